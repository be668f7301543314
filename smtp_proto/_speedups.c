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
 *
 * ReplyParser: smtp_proto.replies.ReplyParser, the incremental parser of the server's
 * replies, which costs a Python client a few microseconds per transaction (see below).
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

/* Bytes checked between two early exits: small enough to stop soon after a bad line end,
 * large enough that the inner loop runs without a branch. */
#define BLOCK 4096

/* Buffers at least this large are checked without holding the GIL. */
#define NOGIL_THRESHOLD 65536

#include <stddef.h>
#include <string.h>

#if PY_VERSION_HEX < 0x030C0000
#include <structmember.h>
#define Py_T_OBJECT_EX T_OBJECT_EX
#endif

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

/* ------------------------------------------------------------------------------------------
 * ReplyParser: smtp_proto.replies.ReplyParser in C, the same in every observable way (the
 * Python class stays there as the reference and the fallback; read its docstrings for the
 * rules).  replies.py hands this module its namespace with bind_replies(), which returns the
 * type: the parser builds that module's Reply and raises its errors, and reads its limits
 * (MAX_LINE_LENGTH, MAX_LINES_PER_REPLY, RECENT_REPLIES, RECENT_LINE_LENGTH) when a parser
 * is made (the one difference: the Python class reads them whenever it uses them, which
 * costs more than the rest of a call here).
 *
 * A server is hostile input: every index into the buffer is bounded by the buffer this call
 * holds a reference to, so code that runs during a call (a finaliser, a comparison with an
 * odd max_buffer) can change the parser's state but never make it read out of bounds.
 */

typedef struct {
    PyObject_HEAD
    PyObject *buffer;      /* exact bytes: what was fed and is not yet parsed, from position */
    Py_ssize_t position;   /* where the next unparsed line starts in buffer */
    PyObject *lines;       /* list: the text of the completed lines of the reply in progress */
    PyObject *raw;         /* list: and those lines as received */
    Py_ssize_t raw_size;   /* their total length */
    char code[3];          /* the code of the reply in progress, once it has a line */
    PyObject *recent;      /* dict: single-line replies by their raw line */
    PyObject *seen_once;   /* set: lines seen once, remembered when seen again */
    PyObject *max_buffer;  /* the max_buffer attribute (any object; NULL once deleted) */
    Py_ssize_t max_line, max_lines, recent_replies, recent_line;  /* the limits */
} ReplyParserObject;

/* What bind_replies() was given (strong references, replaced when it is called again). */
static PyObject *replies_namespace;
static PyTypeObject *reply_type;
static Py_ssize_t reply_code_offset, reply_lines_offset, reply_raw_offset;
static PyObject *protocol_error, *line_too_long;
static PyObject *parser_type; /* created by the first bind_replies() */

/* A new Reply(code, lines, raw), its slots set directly as Reply.__init__ sets them. */
static PyObject *
new_reply(long code, PyObject *lines, PyObject *raw)
{
    PyObject *code_object = PyLong_FromLong(code);
    if (code_object == NULL) {
        return NULL;
    }
    PyObject *reply = reply_type->tp_alloc(reply_type, 0);
    if (reply == NULL) {
        Py_DECREF(code_object);
        return NULL;
    }
    *(PyObject **)((char *)reply + reply_code_offset) = code_object;
    *(PyObject **)((char *)reply + reply_lines_offset) = Py_NewRef(lines);
    *(PyObject **)((char *)reply + reply_raw_offset) = Py_NewRef(raw);
    return reply;
}

/* Raise RemoteProtocolError(message), with .line set when line is not NULL.  Steals
 * message. */
static void
raise_protocol_error(PyObject *message, PyObject *line)
{
    if (message == NULL) {
        return;
    }
    PyObject *error = PyObject_CallOneArg(protocol_error, message);
    Py_DECREF(message);
    if (error == NULL) {
        return;
    }
    if (line == NULL || PyObject_SetAttrString(error, "line", line) == 0) {
        PyErr_SetObject((PyObject *)Py_TYPE(error), error);
    }
    Py_DECREF(error);
}

/* Raise RemoteProtocolError(format % f"{max_buffer}") if total > max_buffer (compared as
 * Python compares them, whatever max_buffer is); 0 if not, -1 with an exception set. */
static int
check_max_buffer(ReplyParserObject *self, Py_ssize_t total, const char *format)
{
    int over;
    if (self->max_buffer == NULL) { /* deleted: the AttributeError reading it raises */
        PyObject *missing = PyObject_GetAttrString((PyObject *)self, "max_buffer");
        Py_XDECREF(missing);
        return -1;
    }
    PyObject *limit = Py_NewRef(self->max_buffer);
    if (PyLong_CheckExact(limit)) {
        int overflow;
        long long value = PyLong_AsLongLongAndOverflow(limit, &overflow);
        over = overflow ? overflow < 0 : total > value;
    }
    else {
        PyObject *size = PyLong_FromSsize_t(total);
        over = size == NULL ? -1 : PyObject_RichCompareBool(size, limit, Py_GT);
        Py_XDECREF(size);
    }
    if (over > 0) {
        PyObject *shown = PyObject_Format(limit, NULL);
        if (shown != NULL) {
            raise_protocol_error(PyUnicode_FromFormat(format, shown), NULL);
            Py_DECREF(shown);
        }
        over = -1;
    }
    Py_DECREF(limit);
    return over;
}

/* One limit from the replies module's namespace; 0, or -1 with an exception set. */
static int
read_limit(const char *name, Py_ssize_t *limit)
{
    PyObject *value = PyDict_GetItemString(replies_namespace, name); /* borrowed */
    if (value == NULL) {
        PyErr_Format(PyExc_RuntimeError, "smtp_proto.replies has no %s", name);
        return -1;
    }
    *limit = PyLong_AsSsize_t(value);
    return *limit == -1 && PyErr_Occurred() ? -1 : 0;
}

static int
read_limits(ReplyParserObject *self)
{
    if (replies_namespace == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ReplyParser used before bind_replies()");
        return -1;
    }
    return read_limit("MAX_LINE_LENGTH", &self->max_line) < 0 ||
                   read_limit("MAX_LINES_PER_REPLY", &self->max_lines) < 0 ||
                   read_limit("RECENT_REPLIES", &self->recent_replies) < 0 ||
                   read_limit("RECENT_LINE_LENGTH", &self->recent_line) < 0
               ? -1
               : 0;
}

static PyObject *
parser_new(PyTypeObject *type, PyObject *args, PyObject *kwds)
{
    ReplyParserObject *self = (ReplyParserObject *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    self->buffer = PyBytes_FromStringAndSize(NULL, 0);
    self->lines = PyList_New(0);
    self->raw = PyList_New(0);
    self->recent = PyDict_New();
    self->seen_once = PySet_New(NULL);
    self->max_buffer = PyLong_FromLong(1L << 20);
    if (self->buffer == NULL || self->lines == NULL || self->raw == NULL ||
        self->recent == NULL || self->seen_once == NULL || self->max_buffer == NULL ||
        read_limits(self) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

/* A method of the Python class, which takes self and at most one more parameter: its
 * arguments are checked as Python checks them, with the same messages. */
typedef struct {
    const char *function; /* its qualified name */
    const char *name;     /* the parameter's name, NULL if it has none */
    int required;         /* whether the parameter has no default */
} Parameters;

/* One keyword argument for the parameter (*value: what it has so far); 0, or -1 with the
 * TypeError set. */
static int
keyword_argument(const Parameters *parameters, PyObject *key, PyObject *given, PyObject **value)
{
    if (parameters->name == NULL || !PyUnicode_Check(key) ||
        PyUnicode_CompareWithASCIIString(key, parameters->name) != 0) {
        PyErr_Format(PyExc_TypeError, "%s() got an unexpected keyword argument '%S'",
                     parameters->function, key);
        return -1;
    }
    if (*value != NULL) {
        PyErr_Format(PyExc_TypeError, "%s() got multiple values for argument '%s'",
                     parameters->function, parameters->name);
        return -1;
    }
    *value = given;
    return 0;
}

/* The parameter's argument in *value (borrowed; NULL if not given), from nargs positional
 * arguments and keywords given as a vectorcall gives them (kwnames, their values after the
 * positional ones) or as a dict (kwds); 0, or -1 with the TypeError Python raises set. */
static int
method_argument(const Parameters *parameters, PyObject *const *args, Py_ssize_t nargs,
                PyObject *kwnames, PyObject *kwds, PyObject **value)
{
    *value = nargs > 0 && parameters->name != NULL ? args[0] : NULL;
    Py_ssize_t count = kwnames == NULL ? 0 : PyTuple_GET_SIZE(kwnames);
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *key = PyTuple_GET_ITEM(kwnames, i);
        if (keyword_argument(parameters, key, args[nargs + i], value) < 0) {
            return -1;
        }
    }
    Py_ssize_t position = 0;
    PyObject *key, *given;
    while (kwds != NULL && PyDict_Next(kwds, &position, &key, &given)) {
        if (keyword_argument(parameters, key, given, value) < 0) {
            return -1;
        }
    }
    if (nargs > (parameters->name != NULL)) {
        const char *takes = parameters->name == NULL ? "1 positional argument"
                            : parameters->required   ? "2 positional arguments"
                                                     : "from 1 to 2 positional arguments";
        PyErr_Format(PyExc_TypeError, "%s() takes %s but %zd were given", parameters->function,
                     takes, nargs + 1);
        return -1;
    }
    if (parameters->required && *value == NULL) {
        PyErr_Format(PyExc_TypeError, "%s() missing 1 required positional argument: '%s'",
                     parameters->function, parameters->name);
        return -1;
    }
    return 0;
}

/* __init__(max_buffer=1 << 20): a parser with nothing buffered or remembered. */
static int
parser_init(ReplyParserObject *self, PyObject *args, PyObject *kwds)
{
    static const Parameters parameters = {"ReplyParser.__init__", "max_buffer", 0};
    PyObject *max_buffer;
    if (method_argument(&parameters, &PyTuple_GET_ITEM(args, 0), PyTuple_GET_SIZE(args), NULL,
                        kwds, &max_buffer) < 0) {
        return -1;
    }
    PyObject *empty = PyBytes_FromStringAndSize(NULL, 0);
    max_buffer = max_buffer == NULL ? PyLong_FromLong(1L << 20) : Py_NewRef(max_buffer);
    if (empty == NULL || max_buffer == NULL || read_limits(self) < 0 ||
        PyList_SetSlice(self->lines, 0, PY_SSIZE_T_MAX, NULL) < 0 ||
        PyList_SetSlice(self->raw, 0, PY_SSIZE_T_MAX, NULL) < 0 ||
        PySet_Clear(self->seen_once) < 0) {
        Py_XDECREF(empty);
        Py_XDECREF(max_buffer);
        return -1;
    }
    PyDict_Clear(self->recent);
    Py_SETREF(self->buffer, empty);
    self->position = 0;
    self->raw_size = 0;
    Py_XSETREF(self->max_buffer, max_buffer);
    return 0;
}

static int
parser_traverse(ReplyParserObject *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->lines);
    Py_VISIT(self->raw);
    Py_VISIT(self->recent);
    Py_VISIT(self->seen_once);
    Py_VISIT(self->max_buffer);
    return 0;
}

static int
parser_clear(ReplyParserObject *self)
{
    Py_CLEAR(self->lines);
    Py_CLEAR(self->raw);
    Py_CLEAR(self->recent);
    Py_CLEAR(self->seen_once);
    Py_CLEAR(self->max_buffer);
    return 0;
}

static void
parser_dealloc(ReplyParserObject *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    parser_clear(self);
    Py_CLEAR(self->buffer);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

/* parser_clear() is only for the collector, which runs no method on a parser it clears;
 * the methods check anyway, so that nothing can make them follow a NULL. */
static int
parser_cleared(ReplyParserObject *self)
{
    if (self->lines == NULL || self->raw == NULL || self->recent == NULL ||
        self->seen_once == NULL) {
        PyErr_SetString(PyExc_RuntimeError, "ReplyParser used after it was cleared");
        return 1;
    }
    return 0;
}

/* feed(data): as ReplyParser.feed. */
static PyObject *
parser_feed(ReplyParserObject *self, PyObject *const *args, Py_ssize_t nargs, PyObject *kwnames)
{
    static const Parameters parameters = {"ReplyParser.feed", "data", 1};
    PyObject *data;
    if (nargs == 1 && kwnames == NULL) {
        data = args[0];
    }
    else if (method_argument(&parameters, args, nargs, kwnames, NULL, &data) < 0) {
        return NULL;
    }
    PyObject *buffer;
    Py_ssize_t size = PyBytes_GET_SIZE(self->buffer);
    Py_ssize_t position = self->position < 0 ? 0 : self->position;
    if (self->position == size) {
        /* bytes(data): the common case, nothing left over and no copy */
        buffer = PyBytes_CheckExact(data) ? Py_NewRef(data)
                                          : PyObject_CallOneArg((PyObject *)&PyBytes_Type, data);
    }
    else if (position < size && PyBytes_CheckExact(data)) {
        /* buffer[position:] + data, in one copy */
        Py_ssize_t left = size - position, added = PyBytes_GET_SIZE(data);
        buffer = PyBytes_FromStringAndSize(NULL, left + added);
        if (buffer != NULL) {
            memcpy(PyBytes_AS_STRING(buffer), PyBytes_AS_STRING(self->buffer) + position, left);
            memcpy(PyBytes_AS_STRING(buffer) + left, PyBytes_AS_STRING(data), added);
        }
    }
    else {
        /* buffer[position:] + data, for any data + accepts */
        if (position > size) {
            position = size;
        }
        PyObject *left = PyBytes_FromStringAndSize(PyBytes_AS_STRING(self->buffer) + position,
                                                   size - position);
        buffer = left == NULL ? NULL : PyNumber_Add(left, data);
        Py_XDECREF(left);
        if (buffer != NULL && !PyBytes_CheckExact(buffer)) {
            /* a subclass's __radd__: keep an exact copy, or refuse what is no bytes */
            PyObject *copy = PyBytes_Check(buffer)
                                 ? PyBytes_FromStringAndSize(PyBytes_AS_STRING(buffer),
                                                             PyBytes_GET_SIZE(buffer))
                                 : PyErr_Format(PyExc_TypeError, "can't concat %.100s to bytes",
                                                Py_TYPE(data)->tp_name);
            Py_SETREF(buffer, copy);
        }
    }
    if (buffer == NULL) {
        return NULL;
    }
    Py_SETREF(self->buffer, buffer);
    self->position = 0;
    if (check_max_buffer(self, PyBytes_GET_SIZE(buffer) + self->raw_size,
                         "server sent more than %U bytes unanswered") < 0) {
        return NULL;
    }
    Py_RETURN_NONE;
}

/* buffer[start:end] as bytes: the buffer itself when that is all of it (as a slice is). */
static PyObject *
slice(PyObject *buffer, Py_ssize_t start, Py_ssize_t end)
{
    if (start == 0 && end == PyBytes_GET_SIZE(buffer)) {
        return Py_NewRef(buffer);
    }
    return PyBytes_FromStringAndSize(PyBytes_AS_STRING(buffer) + start, end - start);
}

/* One reply line, checked as replies._LINE checks it. */
typedef struct {
    char code[3];
    char separator;         /* ' ', '-', or 0 for none */
    Py_ssize_t text_start;  /* the text, stripped of blanks */
    Py_ssize_t text_end;
} Line;

/* Parse the line at buffer[start:end] (end at its LF) as replies._parse_line does: 0, or
 * -1 with the RemoteProtocolError for a malformed line set. */
static int
parse_line(ReplyParserObject *self, PyObject *buffer, Py_ssize_t start, Py_ssize_t end,
           Line *line)
{
    const unsigned char *data = (const unsigned char *)PyBytes_AS_STRING(buffer);
    if (end > start && data[end - 1] == '\r') { /* CRLF; a bare LF is tolerated */
        end--;
    }
    Py_ssize_t size = end - start;
    int good = size >= 3 && data[start] >= '2' && data[start] <= '5' &&
               data[start + 1] >= '0' && data[start + 1] <= '9' && data[start + 2] >= '0' &&
               data[start + 2] <= '9' &&
               (size == 3 || data[start + 3] == ' ' || data[start + 3] == '-');
    for (Py_ssize_t i = start + 4; good && i < end; i++) {
        /* any C0 control but HT, and DEL, is garbage in the text */
        good = !((data[i] < 0x20 && data[i] != '\t') || data[i] == 0x7f);
    }
    if (!good) {
        PyObject *shown = slice(buffer, start, size > 80 ? start + 80 : end);
        PyObject *bad = slice(buffer, start, size > self->max_line ? start + self->max_line : end);
        if (shown != NULL && bad != NULL) {
            raise_protocol_error(PyUnicode_FromFormat("malformed reply line %R", shown), bad);
        }
        Py_XDECREF(shown);
        Py_XDECREF(bad);
        return -1;
    }
    memcpy(line->code, data + start, 3);
    line->separator = size == 3 ? 0 : (char)data[start + 3];
    Py_ssize_t text_start = size == 3 ? end : start + 4;
    while (text_start < end && (data[text_start] == ' ' || data[text_start] == '\t')) {
        text_start++;
    }
    while (end > text_start && (data[end - 1] == ' ' || data[end - 1] == '\t')) {
        end--;
    }
    line->text_start = text_start;
    line->text_end = end;
    return 0;
}

static long
code_value(const char *code)
{
    return (code[0] - '0') * 100 + (code[1] - '0') * 10 + (code[2] - '0');
}

/* A reply of one line, remembered as ReplyParser._single_line_reply remembers it. */
static PyObject *
single_line_reply(ReplyParserObject *self, PyObject *buffer, const Line *line, PyObject *raw_line)
{
    PyObject *text = slice(buffer, line->text_start, line->text_end);
    if (text == NULL) {
        return NULL;
    }
    PyObject *lines = PyTuple_New(1);
    if (lines == NULL) {
        Py_DECREF(text);
        return NULL;
    }
    PyTuple_SET_ITEM(lines, 0, text);
    PyObject *reply = new_reply(code_value(line->code), lines, raw_line);
    Py_DECREF(lines);
    if (reply == NULL || PyBytes_GET_SIZE(raw_line) > self->recent_line) {
        return reply;
    }
    int seen = PySet_Contains(self->seen_once, raw_line);
    if (seen == 0) {
        if ((PySet_GET_SIZE(self->seen_once) >= self->recent_replies &&
             PySet_Clear(self->seen_once) < 0) ||
            PySet_Add(self->seen_once, raw_line) < 0) {
            seen = -1;
        }
    }
    else if (seen > 0) {
        if (PyDict_GET_SIZE(self->recent) >= self->recent_replies) {
            PyDict_Clear(self->recent); /* relearn: the server's replies have changed */
        }
        if (PyDict_SetItem(self->recent, raw_line, reply) < 0) {
            seen = -1;
        }
    }
    if (seen < 0) {
        Py_CLEAR(reply);
    }
    return reply;
}

/* The raw lines joined: b"".join(raw). */
static PyObject *
join_raw(PyObject *raw)
{
    Py_ssize_t total = 0, count = PyList_GET_SIZE(raw);
    for (Py_ssize_t i = 0; i < count; i++) {
        total += PyBytes_GET_SIZE(PyList_GET_ITEM(raw, i));
    }
    PyObject *joined = PyBytes_FromStringAndSize(NULL, total);
    if (joined == NULL) {
        return NULL;
    }
    char *out = PyBytes_AS_STRING(joined);
    for (Py_ssize_t i = 0; i < count && total > 0; i++) {
        PyObject *piece = PyList_GET_ITEM(raw, i);
        Py_ssize_t size = PyBytes_GET_SIZE(piece);
        if (size > total) { /* (the list changed under us: never overrun) */
            size = total;
        }
        memcpy(out, PyBytes_AS_STRING(piece), size);
        out += size;
        total -= size;
    }
    return joined;
}

/* Add a line to the multi-line reply in progress, as ReplyParser._add_line does: the reply
 * once it is complete, Py_None (a borrowed sentinel) while it is not, NULL on an error. */
static PyObject *
add_line(ReplyParserObject *self, PyObject *buffer, const Line *line, PyObject *raw_line)
{
    Py_ssize_t count = PyList_GET_SIZE(self->lines);
    if (count && memcmp(line->code, self->code, 3) != 0) {
        PyObject *before = PyBytes_FromStringAndSize(self->code, 3);
        PyObject *after = PyBytes_FromStringAndSize(line->code, 3);
        if (before != NULL && after != NULL) {
            raise_protocol_error(
                PyUnicode_FromFormat("reply code changed from %R to %R within one reply",
                                     before, after),
                NULL);
        }
        Py_XDECREF(before);
        Py_XDECREF(after);
        return NULL;
    }
    if (count >= self->max_lines) {
        raise_protocol_error(PyUnicode_FromString("reply has too many lines"), NULL);
        return NULL;
    }
    self->raw_size += PyBytes_GET_SIZE(raw_line);
    if (check_max_buffer(self, self->raw_size, "reply longer than %U bytes") < 0) {
        return NULL;
    }
    PyObject *text = slice(buffer, line->text_start, line->text_end);
    if (text == NULL) {
        return NULL;
    }
    int failed = PyList_Append(self->lines, text) < 0 || PyList_Append(self->raw, raw_line) < 0;
    Py_DECREF(text);
    if (failed) {
        return NULL;
    }
    if (line->separator == '-') {
        memcpy(self->code, line->code, 3);
        return Py_None;
    }
    PyObject *lines = PyList_AsTuple(self->lines);
    PyObject *raw = lines == NULL ? NULL : join_raw(self->raw);
    PyObject *reply = raw == NULL ? NULL : new_reply(code_value(line->code), lines, raw);
    Py_XDECREF(lines);
    Py_XDECREF(raw);
    if (reply != NULL) {
        if (PyList_SetSlice(self->lines, 0, PY_SSIZE_T_MAX, NULL) < 0 ||
            PyList_SetSlice(self->raw, 0, PY_SSIZE_T_MAX, NULL) < 0) {
            Py_CLEAR(reply);
        }
        self->raw_size = 0;
    }
    return reply;
}

/* Where the next LF at or after start is in buffer, or -1. */
static Py_ssize_t
find_lf(PyObject *buffer, Py_ssize_t start)
{
    Py_ssize_t size = PyBytes_GET_SIZE(buffer);
    const char *data = PyBytes_AS_STRING(buffer);
    const char *lf = start < size ? memchr(data + start, '\n', (size_t)(size - start)) : NULL;
    return lf == NULL ? -1 : lf - data;
}

/* next_reply() on the buffer this call holds a reference to. */
static PyObject *
next_reply_in(ReplyParserObject *self, PyObject *buffer)
{
    Py_ssize_t size = PyBytes_GET_SIZE(buffer);
    Py_ssize_t start = self->position;
    if (start < 0 || start > size) {
        Py_RETURN_NONE; /* (only code run inside a call can leave this) */
    }
    Py_ssize_t end = find_lf(buffer, start);
    PyObject *raw_line = NULL; /* the line, once made for the look-up */
    if (PyList_GET_SIZE(self->lines) == 0 && end >= 0) {
        raw_line = slice(buffer, start, end + 1);
        if (raw_line == NULL) {
            return NULL;
        }
        PyObject *reply = PyDict_GetItemWithError(self->recent, raw_line); /* borrowed */
        if (reply != NULL) {
            Py_INCREF(reply);
            Py_DECREF(raw_line);
            self->position = end + 1;
            return reply;
        }
        if (PyErr_Occurred()) {
            Py_DECREF(raw_line);
            return NULL;
        }
    }
    while (1) {
        if (end < 0 || end - start >= self->max_line) { /* smtplib's limit counts the LF */
            Py_XDECREF(raw_line);
            if (size - start > self->max_line) {
                PyErr_SetNone(line_too_long);
                return NULL;
            }
            Py_RETURN_NONE;
        }
        self->position = end + 1;
        Line line;
        if (parse_line(self, buffer, start, end, &line) < 0) {
            Py_XDECREF(raw_line);
            return NULL;
        }
        if (raw_line == NULL && (raw_line = slice(buffer, start, end + 1)) == NULL) {
            return NULL;
        }
        PyObject *reply;
        if (line.separator != '-' && PyList_GET_SIZE(self->lines) == 0) {
            reply = single_line_reply(self, buffer, &line, raw_line);
        }
        else {
            reply = add_line(self, buffer, &line, raw_line);
        }
        Py_DECREF(raw_line);
        raw_line = NULL;
        if (reply != Py_None) {
            return reply;
        }
        start = end + 1;
        end = find_lf(buffer, start);
    }
}

/* next_reply(): as ReplyParser.next_reply. */
static PyObject *
parser_next_reply(ReplyParserObject *self, PyObject *const *args, Py_ssize_t nargs,
                  PyObject *kwnames)
{
    static const Parameters parameters = {"ReplyParser.next_reply", NULL, 0};
    PyObject *none;
    if ((nargs != 0 || kwnames != NULL) &&
        method_argument(&parameters, args, nargs, kwnames, NULL, &none) < 0) {
        return NULL;
    }
    if (parser_cleared(self)) {
        return NULL;
    }
    PyObject *buffer = Py_NewRef(self->buffer);
    PyObject *reply = next_reply_in(self, buffer);
    Py_DECREF(buffer);
    return reply;
}

static PyObject *
parser_get_buffered(ReplyParserObject *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(PyBytes_GET_SIZE(self->buffer) - self->position + self->raw_size);
}

/* _recent and _seen_once, for the tests that look at what is remembered. */
static PyObject *
parser_get_container(ReplyParserObject *self, void *closure)
{
    PyObject *container = *(PyObject **)((char *)self + (Py_ssize_t)closure);
    if (container == NULL) {
        PyErr_SetString(PyExc_AttributeError, "ReplyParser was cleared");
        return NULL;
    }
    return Py_NewRef(container);
}

static PyMethodDef parser_methods[] = {
    {"feed", (PyCFunction)(void (*)(void))parser_feed, METH_FASTCALL | METH_KEYWORDS,
     "feed($self, data)\n--\n\nAdd bytes read from the peer."},
    {"next_reply", (PyCFunction)(void (*)(void))parser_next_reply, METH_FASTCALL | METH_KEYWORDS,
     "next_reply($self, /)\n--\n\n"
     "The next complete reply, or ``None`` when more bytes are needed."},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef parser_getset[] = {
    {"buffered", (getter)parser_get_buffered, NULL,
     "How many received bytes are not yet part of a returned reply.", NULL},
    {"_recent", (getter)parser_get_container, NULL, "Single-line replies by their raw line.",
     (void *)offsetof(ReplyParserObject, recent)},
    {"_seen_once", (getter)parser_get_container, NULL,
     "Lines seen once: remembered when seen again.",
     (void *)offsetof(ReplyParserObject, seen_once)},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyMemberDef parser_members[] = {
    {"max_buffer", Py_T_OBJECT_EX, offsetof(ReplyParserObject, max_buffer), 0,
     "Bytes that may be held unparsed; more than this is a ``RemoteProtocolError``."},
    {NULL, 0, 0, 0, NULL},
};

static PyType_Slot parser_slots[] = {
    {Py_tp_doc, "ReplyParser(max_buffer=1048576)\n--\n\n"}, /* bind_replies() sets __doc__ */
    {Py_tp_new, parser_new},
    {Py_tp_init, parser_init},
    {Py_tp_dealloc, parser_dealloc},
    {Py_tp_traverse, parser_traverse},
    {Py_tp_clear, parser_clear},
    {Py_tp_methods, parser_methods},
    {Py_tp_getset, parser_getset},
    {Py_tp_members, parser_members},
    {0, NULL},
};

static PyType_Spec parser_spec = {
    /* the class it stands in for (bind_replies() drops the module from tp_name, so that
     * messages name it as they name that class) */
    .name = "smtp_proto.replies.ReplyParser",
    .basicsize = sizeof(ReplyParserObject),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_BASETYPE | Py_TPFLAGS_HAVE_GC,
    .slots = parser_slots,
};

/* The offset of the object slot `name` of type, from its member descriptor; -1 if it is
 * not one (with an exception set). */
static Py_ssize_t
slot_offset(PyTypeObject *type, const char *name)
{
    PyObject *descriptor = PyDict_GetItemString(type->tp_dict, name); /* borrowed */
    if (descriptor == NULL || !Py_IS_TYPE(descriptor, &PyMemberDescr_Type) ||
        ((PyMemberDescrObject *)descriptor)->d_member->type != Py_T_OBJECT_EX) {
        PyErr_Format(PyExc_TypeError, "%s.%s is not a slot", type->tp_name, name);
        return -1;
    }
    return ((PyMemberDescrObject *)descriptor)->d_member->offset;
}

/* The namespace's object `name`, a subclass of base if base is not NULL (new reference). */
static PyObject *
bound_class(PyObject *namespace, const char *name, PyObject *base)
{
    PyObject *value = PyDict_GetItemString(namespace, name); /* borrowed */
    if (value == NULL || !PyType_Check(value) ||
        (base != NULL && !PyType_IsSubtype((PyTypeObject *)value, (PyTypeObject *)base))) {
        PyErr_Format(PyExc_TypeError, "smtp_proto.replies.%s is not the class expected", name);
        return NULL;
    }
    return Py_NewRef(value);
}

static PyObject *
bind_replies(PyObject *module, PyObject *namespace)
{
    if (!PyDict_Check(namespace)) {
        PyErr_SetString(PyExc_TypeError, "bind_replies() takes the module's namespace");
        return NULL;
    }
    PyObject *reply = bound_class(namespace, "Reply", NULL);
    PyObject *error =
        reply == NULL ? NULL : bound_class(namespace, "RemoteProtocolError", PyExc_Exception);
    PyObject *too_long =
        error == NULL ? NULL : bound_class(namespace, "ReplyLineTooLong", error);
    PyObject *python_parser =
        too_long == NULL ? NULL : bound_class(namespace, "ReplyParser", NULL);
    Py_ssize_t code = -1, lines = -1, raw = -1;
    if (python_parser != NULL) {
        /* Replies are made as object.__new__ and Reply.__init__ make them. */
        PyTypeObject *type = (PyTypeObject *)reply;
        if (type->tp_new != PyBaseObject_Type.tp_new || type->tp_itemsize != 0) {
            PyErr_SetString(PyExc_TypeError, "Reply is not a plain slotted class");
        }
        else if ((code = slot_offset(type, "code")) >= 0 &&
                 (lines = slot_offset(type, "lines")) >= 0) {
            raw = slot_offset(type, "raw");
        }
    }
    if (raw < 0) {
        Py_XDECREF(reply);
        Py_XDECREF(error);
        Py_XDECREF(too_long);
        Py_XDECREF(python_parser);
        return NULL;
    }
    if (parser_type == NULL) {
        parser_type = PyType_FromSpec(&parser_spec);
        /* the Python class's docstring, which says what both do */
        PyObject *doc =
            parser_type == NULL ? NULL : PyObject_GetAttrString(python_parser, "__doc__");
        /* and __name__ set again: that drops the module from tp_name, for the messages */
        PyObject *name = doc == NULL ? NULL : PyObject_GetAttrString(parser_type, "__name__");
        if (name == NULL || PyObject_SetAttrString(parser_type, "__doc__", doc) < 0 ||
            PyObject_SetAttrString(parser_type, "__name__", name) < 0) {
            Py_XDECREF(name);
            Py_XDECREF(doc);
            Py_CLEAR(parser_type);
            Py_DECREF(reply);
            Py_DECREF(error);
            Py_DECREF(too_long);
            Py_DECREF(python_parser);
            return NULL;
        }
        Py_DECREF(doc);
        Py_DECREF(name);
    }
    Py_DECREF(python_parser);
    Py_XSETREF(replies_namespace, Py_NewRef(namespace));
    Py_XSETREF(reply_type, (PyTypeObject *)reply);
    Py_XSETREF(protocol_error, error);
    Py_XSETREF(line_too_long, too_long);
    reply_code_offset = code;
    reply_lines_offset = lines;
    reply_raw_offset = raw;
    return Py_NewRef(parser_type);
}

/* ------------------------------------------------------------------------------------------
 * take_replies: smtp_proto.connection.take_replies in C (the Python function is the
 * reference and the fallback; read its docstring for what it does).  connection.py hands
 * this module its command classes with bind_commands(), which returns the function.
 */

static PyTypeObject *mail_type, *rcpt_type, *bdat_type;
static Py_ssize_t rcpt_recipient_offset, bdat_last_offset;
static PyObject *popleft_name, *next_reply_name;

/* The object in the slot at offset of object; NULL with AttributeError if it is unset. */
static PyObject *
slot_value(PyObject *object, Py_ssize_t offset, const char *name)
{
    PyObject *value = *(PyObject **)((char *)object + offset);
    if (value == NULL) {
        PyErr_Format(PyExc_AttributeError, "%s has no %s", Py_TYPE(object)->tp_name, name);
    }
    return value; /* borrowed */
}

/* parser.next_reply(): the C parser's without a method call. */
static PyObject *
next_reply_of(PyObject *parser)
{
    if (parser_type != NULL && Py_IS_TYPE(parser, (PyTypeObject *)parser_type)) {
        return parser_next_reply((ReplyParserObject *)parser, NULL, 0, NULL);
    }
    return PyObject_CallMethodNoArgs(parser, next_reply_name);
}

/* reply.code as a C long; -1 with an exception set if it is none. */
static long
code_of(PyObject *reply)
{
    PyObject *code;
    if (reply_type != NULL && Py_IS_TYPE(reply, reply_type)) {
        code = slot_value(reply, reply_code_offset, "code");
        return code == NULL ? -1 : PyLong_AsLong(code);
    }
    code = PyObject_GetAttrString(reply, "code");
    if (code == NULL) {
        return -1;
    }
    long value = PyLong_AsLong(code);
    Py_DECREF(code);
    return value;
}

/* One step of take_replies for command, the oldest pending: 1 if its reply was taken (and
 * appended), 0 to stop (*stop_reply: a 421 to hand back, or NULL), -1 on an error. */
static int
take_one(PyObject *parser, PyObject *pending, PyObject *command, PyObject *replies,
         PyObject *accepted, int lmtp, PyObject **stop_reply)
{
    PyTypeObject *kind = Py_TYPE(command);
    int last = 0;
    if (kind == bdat_type) {
        PyObject *flag = slot_value(command, bdat_last_offset, "last");
        if (flag == NULL || (last = PyObject_IsTrue(flag)) < 0) {
            return -1;
        }
        if (last && lmtp && PyList_GET_SIZE(accepted) > 1) {
            return 0;
        }
    }
    else if (kind != mail_type && kind != rcpt_type) {
        return 0;
    }
    PyObject *reply = next_reply_of(parser);
    if (reply == NULL) {
        return -1;
    }
    if (reply == Py_None) {
        Py_DECREF(reply);
        return 0;
    }
    long code = code_of(reply);
    if (code == -1 && PyErr_Occurred()) {
        Py_DECREF(reply);
        return -1;
    }
    if (code == 421) {
        *stop_reply = reply;
        return 0;
    }
    PyObject *popped = PyObject_CallMethodNoArgs(pending, popleft_name);
    int failed = popped == NULL ? -1 : 0;
    Py_XDECREF(popped);
    if (failed == 0 && kind == rcpt_type) {
        if (code < 300) {
            PyObject *recipient = slot_value(command, rcpt_recipient_offset, "recipient");
            failed = recipient == NULL ? -1 : PyList_Append(accepted, recipient);
        }
    }
    else if (failed == 0 && (kind == mail_type || code >= 300 || last)) {
        failed = PyList_SetSlice(accepted, 0, PyList_GET_SIZE(accepted), NULL);
    }
    if (failed == 0) {
        failed = PyList_Append(replies, reply);
    }
    Py_DECREF(reply);
    return failed < 0 ? -1 : 1;
}

static PyObject *
take_replies(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 6) {
        PyErr_Format(PyExc_TypeError, "take_replies() takes 6 arguments (%zd given)", nargs);
        return NULL;
    }
    PyObject *parser = args[0], *pending = args[1], *replies = args[2], *accepted = args[4];
    if (!PyList_Check(replies) || !PyList_Check(accepted)) {
        PyErr_SetString(PyExc_TypeError, "take_replies() takes lists of replies and recipients");
        return NULL;
    }
    Py_ssize_t count = PyLong_AsSsize_t(args[3]);
    if (count == -1 && PyErr_Occurred()) {
        return NULL;
    }
    int lmtp = PyObject_IsTrue(args[5]);
    if (lmtp < 0) {
        return NULL;
    }
    PyObject *stop_reply = NULL;
    while (PyList_GET_SIZE(replies) < count) {
        Py_ssize_t waiting = PyObject_Length(pending);
        if (waiting <= 0) {
            if (waiting < 0) {
                return NULL;
            }
            break;
        }
        PyObject *command = PySequence_GetItem(pending, 0);
        if (command == NULL) {
            return NULL;
        }
        int taken = take_one(parser, pending, command, replies, accepted, lmtp, &stop_reply);
        Py_DECREF(command);
        if (taken < 0) {
            return NULL;
        }
        if (taken == 0) {
            break;
        }
    }
    return stop_reply == NULL ? Py_NewRef(Py_None) : stop_reply;
}

static PyMethodDef take_replies_method = {
    "take_replies", (PyCFunction)(void (*)(void))take_replies, METH_FASTCALL,
    "take_replies(parser, pending, replies, count, accepted, lmtp, /)\n--\n\n"
    "As smtp_proto.connection.take_replies (the reference), in C.",
};

static PyObject *take_replies_function; /* made by the first bind_commands() */

static PyObject *
bind_commands(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    if (nargs != 3 || !PyType_Check(args[0]) || !PyType_Check(args[1]) ||
        !PyType_Check(args[2])) {
        PyErr_SetString(PyExc_TypeError, "bind_commands() takes the classes Mail, Rcpt, Bdat");
        return NULL;
    }
    Py_ssize_t recipient = slot_offset((PyTypeObject *)args[1], "recipient");
    Py_ssize_t last = recipient < 0 ? -1 : slot_offset((PyTypeObject *)args[2], "last");
    if (last < 0) {
        return NULL;
    }
    if (popleft_name == NULL &&
        (popleft_name = PyUnicode_InternFromString("popleft")) == NULL) {
        return NULL;
    }
    if (next_reply_name == NULL &&
        (next_reply_name = PyUnicode_InternFromString("next_reply")) == NULL) {
        return NULL;
    }
    if (take_replies_function == NULL &&
        (take_replies_function = PyCFunction_NewEx(&take_replies_method, NULL, NULL)) == NULL) {
        return NULL;
    }
    Py_XSETREF(mail_type, (PyTypeObject *)Py_NewRef(args[0]));
    Py_XSETREF(rcpt_type, (PyTypeObject *)Py_NewRef(args[1]));
    Py_XSETREF(bdat_type, (PyTypeObject *)Py_NewRef(args[2]));
    rcpt_recipient_offset = recipient;
    bdat_last_offset = last;
    return Py_NewRef(take_replies_function);
}

static PyMethodDef speedups_methods[] = {
    {"crlf_only", crlf_only, METH_O,
     "crlf_only(buffer, /)\n--\n\n"
     "True iff every CR is followed by LF and every LF is preceded by CR."},
    {"stuff_dots", (PyCFunction)(void (*)(void))stuff_dots, METH_FASTCALL,
     "stuff_dots(buffer, line_start, /)\n--\n\n"
     "The buffer with every dot that follows CRLF (or starts it, if line_start) doubled."},
    {"bind_commands", (PyCFunction)(void (*)(void))bind_commands, METH_FASTCALL,
     "bind_commands(Mail, Rcpt, Bdat, /)\n--\n\n"
     "The C take_replies, bound to smtp_proto.commands' classes."},
    {"bind_replies", bind_replies, METH_O,
     "bind_replies(namespace, /)\n--\n\n"
     "The C ReplyParser, bound to smtp_proto.replies' namespace (its Reply, errors, limits)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef speedups_module = {
    PyModuleDef_HEAD_INIT,
    .m_name = "smtp_proto._speedups",
    .m_doc = "Optional C accelerator for smtp_proto.body and smtp_proto.replies (pure-Python "
              "fallbacks there).",
    .m_size = 0,
    .m_methods = speedups_methods,
};

PyMODINIT_FUNC
PyInit__speedups(void)
{
    return PyModuleDef_Init(&speedups_module);
}
