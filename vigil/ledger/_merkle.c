/* Bulk RFC 9162 hashing for `vigil verify`: the leaf hashes of many events and the roots of complete subtrees.
 *
 * In Python, each hash is two hashlib calls whose overhead costs more than the SHA-256 itself, and verify needs
 * two hashes per event (its leaf and, on average, one node above it). Here the cost per event is OpenSSL's
 * SHA-256 and nothing else. vigil/ledger/bulk.py holds the pure-Python equivalents, used when this module was
 * not built, and the tests check that the two agree. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/evp.h>
#include <string.h>

#define HASH_LEN 32

static EVP_MD *sha256_md; /* fetched once: an implicit fetch per digest would cost more than a leaf hash */

/* SHA-256(prefix || data): RFC 9162 hashes a leaf with prefix 0x00 and an interior node with 0x01 */
static int
hash_with(EVP_MD_CTX *ctx, unsigned char prefix, const void *data, size_t len, unsigned char *out)
{
    return EVP_DigestInit_ex(ctx, sha256_md, NULL) && EVP_DigestUpdate(ctx, &prefix, 1)
        && EVP_DigestUpdate(ctx, data, len) && EVP_DigestFinal_ex(ctx, out, NULL);
}

PyDoc_STRVAR(joined_leaf_hashes_doc,
"joined_leaf_hashes(joined, count, suffix, /)\n--\n\n"
"SHA-256(0x00 || part) of each newline-separated part of `joined`, concatenated (32 bytes per part), or None\n"
"unless `joined` has exactly `count` parts and each of them ends with `suffix`.");

static PyObject *
joined_leaf_hashes(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "joined_leaf_hashes takes exactly three arguments (joined, count, suffix)");
        return NULL;
    }
    if (!PyBytes_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "suffix must be bytes");
        return NULL;
    }
    const char *suffix = PyBytes_AS_STRING(args[2]);
    size_t suffix_len = (size_t)PyBytes_GET_SIZE(args[2]);
    Py_ssize_t count = PyLong_AsSsize_t(args[1]);
    if (count == -1 && PyErr_Occurred()) return NULL;
    if (count < 1) {
        PyErr_Format(PyExc_ValueError, "count must be at least 1, not %zd", count);
        return NULL;
    }
    Py_buffer buf;
    if (PyObject_GetBuffer(args[0], &buf, PyBUF_SIMPLE) < 0) return NULL;
    if (count > buf.len + 1) { /* more parts than bytes to split: none, and count * HASH_LEN might overflow */
        PyBuffer_Release(&buf);
        Py_RETURN_NONE;
    }
    PyObject *out = PyBytes_FromStringAndSize(NULL, count * HASH_LEN);
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (out == NULL || ctx == NULL) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        Py_CLEAR(out);
        goto done;
    }
    const char *p = buf.buf, *end = p + buf.len;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    Py_ssize_t parts = 0;
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    for (;;) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *stop = nl != NULL ? nl : end;
        size_t len = (size_t)(stop - p);
        if (parts == count || len < suffix_len || memcmp(stop - suffix_len, suffix, suffix_len) != 0) {
            parts = -1; /* one part too many, or a part without the suffix */
            break;
        }
        ok = hash_with(ctx, 0x00, p, len, o + parts * HASH_LEN);
        parts++;
        if (!ok || nl == NULL) break;
        p = nl + 1;
    }
    Py_END_ALLOW_THREADS
    if (!ok) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL SHA-256 failed");
        Py_CLEAR(out);
    } else if (parts != count) {
        Py_CLEAR(out);
        out = Py_NewRef(Py_None);
    }
done:
    EVP_MD_CTX_free(ctx);
    PyBuffer_Release(&buf);
    return out;
}

PyDoc_STRVAR(subtree_roots_doc,
"subtree_roots(hashes, width, /)\n--\n\n"
"The RFC 9162 root of each run of `width` leaf hashes in `hashes` (32 bytes each, concatenated), concatenated.\n"
"`width` is a power of two and len(hashes) a multiple of 32 * width.");

static PyObject *
subtree_roots(PyObject *Py_UNUSED(module), PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "subtree_roots takes exactly two arguments (hashes, width)");
        return NULL;
    }
    Py_ssize_t width = PyLong_AsSsize_t(args[1]);
    if (width == -1 && PyErr_Occurred()) return NULL;
    if (width < 1 || (width & (width - 1)) != 0) {
        PyErr_Format(PyExc_ValueError, "width must be a power of two, not %zd", width);
        return NULL;
    }
    Py_buffer buf;
    if (PyObject_GetBuffer(args[0], &buf, PyBUF_SIMPLE) < 0) return NULL;
    PyObject *out = NULL;
    unsigned char *level = NULL;
    EVP_MD_CTX *ctx = NULL;
    /* width is compared before it is multiplied, which could overflow */
    if (buf.len != 0 && (width > buf.len / HASH_LEN || buf.len % (HASH_LEN * width) != 0)) {
        PyErr_Format(PyExc_ValueError, "%zd bytes of hashes do not make whole runs of %zd leaves", buf.len, width);
        goto done;
    }
    Py_ssize_t blocks = buf.len / (HASH_LEN * width);
    out = PyBytes_FromStringAndSize(NULL, blocks * HASH_LEN);
    level = PyMem_Malloc((size_t)width * HASH_LEN);
    ctx = EVP_MD_CTX_new();
    if (out == NULL || level == NULL || ctx == NULL) {
        if (!PyErr_Occurred()) PyErr_NoMemory();
        Py_CLEAR(out);
        goto done;
    }
    const unsigned char *in = buf.buf;
    unsigned char *o = (unsigned char *)PyBytes_AS_STRING(out);
    int ok = 1;
    Py_BEGIN_ALLOW_THREADS
    for (Py_ssize_t b = 0; ok && b < blocks; b++) {
        memcpy(level, in + b * width * HASH_LEN, (size_t)width * HASH_LEN);
        /* each pass hashes pairs of the level in place: node i = SHA-256(0x01 || left || right) */
        for (Py_ssize_t k = width; ok && k > 1; k /= 2)
            for (Py_ssize_t i = 0; ok && i < k / 2; i++)
                ok = hash_with(ctx, 0x01, level + 2 * i * HASH_LEN, 2 * HASH_LEN, level + i * HASH_LEN);
        memcpy(o + b * HASH_LEN, level, HASH_LEN);
    }
    Py_END_ALLOW_THREADS
    if (!ok) {
        PyErr_SetString(PyExc_RuntimeError, "OpenSSL SHA-256 failed");
        Py_CLEAR(out);
    }
done:
    EVP_MD_CTX_free(ctx);
    PyMem_Free(level);
    PyBuffer_Release(&buf);
    return out;
}

static PyMethodDef methods[] = {
    {"joined_leaf_hashes", (PyCFunction)(void (*)(void))joined_leaf_hashes, METH_FASTCALL, joined_leaf_hashes_doc},
    {"subtree_roots", (PyCFunction)(void (*)(void))subtree_roots, METH_FASTCALL, subtree_roots_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "vigil.ledger._merkle",
    .m_doc = "Bulk RFC 9162 hashing for vigil verify (see vigil.ledger.bulk).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__merkle(void)
{
#if OPENSSL_VERSION_NUMBER >= 0x30000000L
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
#else
    sha256_md = (EVP_MD *)EVP_sha256();
#endif
    if (sha256_md == NULL) {
        PyErr_SetString(PyExc_ImportError, "OpenSSL has no SHA-256");
        return NULL;
    }
    return PyModule_Create(&module);
}
