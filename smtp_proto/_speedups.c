/* Optional C accelerator for smtp_proto.body: the line-ending check of the body encoder.
 *
 * crlf_only(buffer) -> bool: True iff every CR in the buffer is followed by an LF and every
 * LF is preceded by a CR, i.e. the buffer's line ends are all CRLF and it needs no
 * normalisation.  This is the hot loop of sending a large message; in pure Python it takes
 * two passes and a copy (splitlines and join), here one pass that the compiler vectorises.
 * smtp_proto.body has the pure-Python equivalent and uses it when this module is missing;
 * the tests prove the two agree.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Bytes checked between two early exits: small enough to stop soon after a bad line end,
 * large enough that the inner loop runs without a branch. */
#define BLOCK 4096

/* Buffers at least this large are checked without holding the GIL. */
#define NOGIL_THRESHOLD 65536

static int
line_ends_all_crlf(const unsigned char *data, Py_ssize_t size)
{
    if (size == 0) {
        return 1;
    }
    if (data[0] == '\n' || data[size - 1] == '\r') {
        return 0;
    }
    /* From the second byte on, a byte is LF exactly when the byte before it is CR. */
    for (Py_ssize_t start = 1; start < size; start += BLOCK) {
        Py_ssize_t end = size - start > BLOCK ? start + BLOCK : size;
        unsigned char mismatch = 0;
        for (Py_ssize_t i = start; i < end; i++) {
            mismatch |= (unsigned char)((data[i] == '\n') ^ (data[i - 1] == '\r'));
        }
        if (mismatch) {
            return 0;
        }
    }
    return 1;
}

static PyObject *
crlf_only(PyObject *module, PyObject *arg)
{
    Py_buffer view;
    int result;

    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (view.len >= NOGIL_THRESHOLD) {
        /* The buffer export keeps the memory alive and unresized while the GIL is released. */
        Py_BEGIN_ALLOW_THREADS
        result = line_ends_all_crlf(view.buf, view.len);
        Py_END_ALLOW_THREADS
    }
    else {
        result = line_ends_all_crlf(view.buf, view.len);
    }
    PyBuffer_Release(&view);
    return PyBool_FromLong(result);
}

static PyMethodDef speedups_methods[] = {
    {"crlf_only", crlf_only, METH_O,
     "crlf_only(buffer, /)\n--\n\n"
     "True iff every CR is followed by LF and every LF is preceded by CR."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "smtp_proto._speedups",
    .m_doc = "Optional C accelerator for smtp_proto.body (pure-Python fallback there).",
    .m_size = 0,
    .m_methods = speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
