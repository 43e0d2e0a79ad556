/* userctl._sha256: whether bytes hash to a stored SHA-256 hex digest, the question `audit verify`
 * asks once per event (src/userctl/hexdigest.py holds the definition and the fallback).
 *
 * Why C: through hashlib each question costs about 0.3 us beyond the hashing itself (a context
 * made, initialised, copied for hexdigest and freed, a str built), a fifth of verifying an event.
 * Here one OpenSSL context, fetched once, is re-initialised per call and the digest is compared
 * with the stored text in place. It is OpenSSL's SHA-256, the one hashlib uses: nothing here
 * hashes by itself.
 *
 * It answers exactly what `hashlib.sha256(payload).hexdigest() == stored` answers for bytes and a
 * str (tests/core/test_hexdigest.py holds the two equal on generated values): a stored value that
 * is no str, or not 64 ASCII characters, never matches (nor does anything where OpenSSL fails:
 * the definition then decides). The GIL is held throughout, so the one
 * context is never used by two calls at once. */

#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <openssl/err.h>
#include <openssl/evp.h>

static EVP_MD *sha256;
static EVP_MD_CTX *context;

static PyObject *
matches(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    static const char hex[] = "0123456789abcdef";
    unsigned char digest[EVP_MAX_MD_SIZE];
    unsigned int size = 0;
    PyObject *payload, *stored;
    const Py_UCS1 *text;
    int k;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "matches(payload, hexdigest) takes two arguments");
        return NULL;
    }
    payload = args[0];
    stored = args[1];
    if (!PyBytes_Check(payload)) {
        PyErr_SetString(PyExc_TypeError, "the payload must be bytes");
        return NULL;
    }
    if (!PyUnicode_Check(stored)) {
        Py_RETURN_FALSE;
    }
#if PY_VERSION_HEX < 0x030C0000
    /* Before 3.12 a str made by the legacy C API may not be ready to read as below. */
    if (PyUnicode_READY(stored) < 0) {
        return NULL;
    }
#endif
    if (!PyUnicode_IS_ASCII(stored) || PyUnicode_GET_LENGTH(stored) != 64) {
        Py_RETURN_FALSE;
    }
    if (!EVP_DigestInit_ex2(context, sha256, NULL)
        || !EVP_DigestUpdate(context, PyBytes_AS_STRING(payload),
                             (size_t)PyBytes_GET_SIZE(payload))
        || !EVP_DigestFinal_ex(context, digest, &size) || size != 32) {
        /* Not confirmed: the caller's definition (hashlib) then judges the event, so a failing
         * OpenSSL can cost speed, never a verdict. Its error is not left for hashlib to find. */
        ERR_clear_error();
        Py_RETURN_FALSE;
    }
    text = PyUnicode_1BYTE_DATA(stored);
    for (k = 0; k < 32; k++) {
        if (text[2 * k] != hex[digest[k] >> 4] || text[2 * k + 1] != hex[digest[k] & 15]) {
            Py_RETURN_FALSE;
        }
    }
    Py_RETURN_TRUE;
}

static PyMethodDef methods[] = {
    {"matches", (PyCFunction)(void (*)(void))matches, METH_FASTCALL,
     "matches(payload: bytes, hexdigest: object) -> bool\n\n"
     "hashlib.sha256(payload).hexdigest() == hexdigest"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "userctl._sha256", "SHA-256 hex digests compared in place.", -1,
    methods,
};

PyMODINIT_FUNC
PyInit__sha256(void)
{
    if (sha256 == NULL) {
        sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    }
    if (context == NULL) {
        context = EVP_MD_CTX_new();
    }
    if (sha256 == NULL || context == NULL) {
        /* hexdigest.py then uses hashlib. */
        PyErr_SetString(PyExc_ImportError, "OpenSSL has no SHA-256 here");
        return NULL;
    }
    return PyModule_Create(&module);
}
