/* One question about a JSON text, answered without building it: does any object in it repeat a key?
 *
 * Intake reads request bodies with msgspec, which is fast but lets the last of two equal keys win. Vigil refuses
 * such bodies (two readers of the same bytes must never see two different events), and asking the standard
 * library's parser to check every object through a Python hook costs more than the whole decode. This scan
 * costs a pass over the bytes. vigil/ingest/decode.py uses it only on text msgspec has already accepted as JSON,
 * and takes its slow, fully checked path whenever the answer here is not a plain "no repeated key".
 *
 * Every bound is explicit: the input is untrusted. Nesting is capped (MAX_DEPTH), keys are compared with memcmp
 * against the keys of their own object only, and an object with more than MAX_KEYS keys, a key holding an escape
 * (whose bytes need decoding before they can be compared) or text that is not well-formed JSON makes the answer
 * "undecided" (None), never a guess. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <string.h>

#define MAX_DEPTH 128
#define MAX_KEYS 256

typedef struct {
    Py_ssize_t off;
    Py_ssize_t len;
} span;

enum { UNIQUE = 0, REPEATED = 1, UNDECIDED = 2, NO_MEMORY = 3 };

static int
is_space(unsigned char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r';
}

static int
scan(const unsigned char *s, Py_ssize_t n)
{
    /* first[d]: index in `keys` of the first key of the object open at depth d, or -1 for an array */
    Py_ssize_t first[MAX_DEPTH + 1];
    int depth = 0;
    span *keys = NULL;
    Py_ssize_t nkeys = 0, cap = 0;
    int result = UNIQUE;
    first[0] = -1;

    for (Py_ssize_t i = 0; i < n && result == UNIQUE; i++) {
        unsigned char c = s[i];
        if (c == '{' || c == '[') {
            if (depth >= MAX_DEPTH) {
                result = UNDECIDED;
                break;
            }
            first[++depth] = c == '{' ? nkeys : -1;
        } else if (c == '}' || c == ']') {
            if (depth == 0) {
                result = UNDECIDED;
                break;
            }
            if (first[depth] >= 0)
                nkeys = first[depth]; /* the object's keys are forgotten with it */
            depth--;
        } else if (c == '"') {
            Py_ssize_t start = i + 1, j = start;
            int escaped = 0;
            while (j < n && s[j] != '"') {
                if (s[j] == '\\') {
                    escaped = 1;
                    j++; /* the escaped byte, which may be a quote */
                }
                j++;
            }
            if (j >= n) {
                result = UNDECIDED; /* an unterminated string: not JSON */
                break;
            }
            i = j; /* at the closing quote */
            if (depth == 0 || first[depth] < 0)
                continue; /* a string in an array or at the top: a value */
            Py_ssize_t k = j + 1;
            while (k < n && is_space(s[k]))
                k++;
            if (k >= n || s[k] != ':')
                continue; /* a value of the object, not a key */
            if (escaped) {
                result = UNDECIDED;
                break;
            }
            Py_ssize_t len = j - start;
            for (Py_ssize_t m = first[depth]; m < nkeys; m++) {
                if (keys[m].len == len && memcmp(s + keys[m].off, s + start, (size_t)len) == 0) {
                    result = REPEATED;
                    break;
                }
            }
            if (result != UNIQUE)
                break;
            if (nkeys - first[depth] >= MAX_KEYS) {
                result = UNDECIDED;
                break;
            }
            if (nkeys == cap) {
                Py_ssize_t grown = cap ? cap * 2 : 64;
                span *more = PyMem_RawRealloc(keys, (size_t)grown * sizeof(span));
                if (more == NULL) {
                    result = NO_MEMORY;
                    break;
                }
                keys = more;
                cap = grown;
            }
            keys[nkeys].off = start;
            keys[nkeys].len = len;
            nkeys++;
        }
    }
    if (result == UNIQUE && depth != 0)
        result = UNDECIDED; /* an unclosed object or array: not JSON */
    PyMem_RawFree(keys);
    return result;
}

PyDoc_STRVAR(keys_unique_doc,
"keys_unique(data, /)\n--\n\n"
"True if no JSON object in `data` repeats a key, False if one does, None if the scan cannot say (a key with an\n"
"escape, an object of more than 256 keys, nesting deeper than 128, or text that is not well-formed JSON).");

static PyObject *
keys_unique(PyObject *Py_UNUSED(module), PyObject *arg)
{
    Py_buffer buf;
    if (PyObject_GetBuffer(arg, &buf, PyBUF_SIMPLE) < 0)
        return NULL;
    int result;
    Py_BEGIN_ALLOW_THREADS
    result = scan((const unsigned char *)buf.buf, buf.len);
    Py_END_ALLOW_THREADS
    PyBuffer_Release(&buf);
    switch (result) {
    case UNIQUE:
        Py_RETURN_TRUE;
    case REPEATED:
        Py_RETURN_FALSE;
    case NO_MEMORY:
        return PyErr_NoMemory();
    default:
        Py_RETURN_NONE;
    }
}

static PyMethodDef methods[] = {
    {"keys_unique", (PyCFunction)keys_unique, METH_O, keys_unique_doc},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    .m_base = PyModuleDef_HEAD_INIT,
    .m_name = "vigil.ingest._scan",
    .m_doc = "Repeated JSON keys, found in one pass over the bytes (see vigil.ingest.decode).",
    .m_size = -1,
    .m_methods = methods,
};

PyMODINIT_FUNC
PyInit__scan(void)
{
    return PyModule_Create(&module);
}
