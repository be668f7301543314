/* Optional C accelerator for smtp_proto.body: the line-ending check of the body encoder.
 *
 * crlf_only(buffer) -> bool: True iff every CR in the buffer is followed by an LF and every
 * LF is preceded by a CR, i.e. the buffer's line ends are all CRLF and it needs no
 * normalisation.  This is the hot loop of sending a large message; in pure Python it takes
 * two passes and a copy (splitlines and join), here one pass that the compiler vectorises.
 *
 * stuff_dots(buffer, line_start) -> bytes: the buffer with a dot doubled wherever it follows
 * CRLF (and at the start when line_start is true): DATA's dot-stuffing (RFC 5321 4.5.2).  In
 * pure Python, split and join allocate an object per stuffed line; here one counting pass
 * and one copy.
 *
 * smtp_proto.body has the pure-Python equivalents and uses them when this module is missing;
 * the tests and the fuzz_body target prove that the two agree.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Bytes checked between two early exits: small enough to stop soon after a bad line end,
 * large enough that the inner loop runs without a branch. */
#define BLOCK 4096

/* Buffers at least this large are checked without holding the GIL. */
#define NOGIL_THRESHOLD 65536

#include <string.h>

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

/* Whether the dot at data[i] starts a line: it follows CRLF, or it is the first byte of a
 * buffer that starts a line. */
static inline int
starts_line(const unsigned char *data, Py_ssize_t i, int line_start)
{
    return i >= 2 ? data[i - 1] == '\n' && data[i - 2] == '\r' : i == 0 && line_start;
}

/* How many dots start a line (found with memchr: dots are sparse in mail). */
static Py_ssize_t
count_line_dots(const unsigned char *data, Py_ssize_t size, int line_start)
{
    Py_ssize_t count = 0;
    const unsigned char *end = data + size;
    for (const unsigned char *dot = memchr(data, '.', size); dot != NULL;
         dot = memchr(dot + 1, '.', (size_t)(end - dot - 1))) {
        count += starts_line(data, dot - data, line_start);
    }
    return count;
}

/* Copy data to out, each dot that starts a line written twice. */
static void
copy_stuffed(const unsigned char *data, Py_ssize_t size, int line_start, unsigned char *out)
{
    const unsigned char *end = data + size;
    const unsigned char *copied = data; /* everything before this is in out */
    for (const unsigned char *dot = memchr(data, '.', size); dot != NULL;
         dot = memchr(dot + 1, '.', (size_t)(end - dot - 1))) {
        if (starts_line(data, dot - data, line_start)) {
            memcpy(out, copied, (size_t)(dot - copied));
            out += dot - copied;
            *out++ = '.';
            copied = dot; /* the dot itself goes out with the next stretch */
        }
    }
    memcpy(out, copied, (size_t)(end - copied));
}

static PyObject *
stuff_dots(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t count;
    int line_start;
    PyObject *result;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "stuff_dots() takes a buffer and line_start");
        return NULL;
    }
    line_start = PyObject_IsTrue(args[1]);
    if (line_start < 0 || PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *data = view.buf;
    int nogil = view.len >= NOGIL_THRESHOLD;
    if (nogil) {
        Py_BEGIN_ALLOW_THREADS
        count = count_line_dots(data, view.len, line_start);
        Py_END_ALLOW_THREADS
    }
    else {
        count = count_line_dots(data, view.len, line_start);
    }
    if (count == 0 && PyBytes_CheckExact(args[0])) {
        result = Py_NewRef(args[0]); /* nothing to stuff: no copy */
    }
    else if ((result = PyBytes_FromStringAndSize(NULL, view.len + count)) != NULL) {
        unsigned char *out = (unsigned char *)PyBytes_AS_STRING(result);
        if (nogil) {
            Py_BEGIN_ALLOW_THREADS
            copy_stuffed(data, view.len, line_start, out);
            Py_END_ALLOW_THREADS
        }
        else {
            copy_stuffed(data, view.len, line_start, out);
        }
    }
    PyBuffer_Release(&view);
    return result;
}

static PyMethodDef speedups_methods[] = {
    {"crlf_only", crlf_only, METH_O,
     "crlf_only(buffer, /)\n--\n\n"
     "True iff every CR is followed by LF and every LF is preceded by CR."},
    {"stuff_dots", (PyCFunction)(void (*)(void))stuff_dots, METH_FASTCALL,
     "stuff_dots(buffer, line_start, /)\n--\n\n"
     "The buffer with every dot that follows CRLF (or starts it, if line_start) doubled."},
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
