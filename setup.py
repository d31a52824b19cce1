"""The one thing pyproject.toml cannot declare stably: vigil verify's bulk hashing in C.

Optional: without a C compiler or OpenSSL's headers the install still succeeds and ``vigil verify`` hashes in
Python, about half as fast (vigil/ledger/bulk.py says why, and ``NATIVE`` there says which is in use).
"""

from setuptools import Extension, setup

setup(
    ext_modules=[
        Extension(
            "vigil.ledger._merkle",
            sources=["vigil/ledger/_merkle.c"],
            libraries=["crypto"],
            extra_compile_args=["-O2"],
            optional=True,
        )
    ]
)
