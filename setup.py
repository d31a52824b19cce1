"""What pyproject.toml cannot declare stably: two small C helpers on hot paths.

Both are optional: without a C compiler (or OpenSSL's headers, for the first) the install still succeeds.
``vigil verify``'s bulk hashing then runs in Python, about half as fast (vigil/ledger/bulk.py says why, and
``NATIVE`` there says which is in use); intake's repeated-key check then runs through the standard library's
parser, about 6 µs more per event (vigil/ingest/decode.py, ``FAST``).
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
        ),
        Extension(
            "vigil.ingest._scan",
            sources=["vigil/ingest/_scan.c"],
            extra_compile_args=["-O2"],
            optional=True,
        ),
    ]
)
