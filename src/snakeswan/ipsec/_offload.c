/* snakeswan.ipsec._offload: the Internet checksum's sum in C, for ipsec.offload (TSO/GRO on TUN).
 *
 * Optional: built at install when a C compiler and the Python headers are there; ipsec.offload
 * falls back to the same sum in Python (one int.from_bytes and a few %) when it is not. It is no
 * cryptography: RFC 1071's ones' complement sum, which the kernel's TCP checks on every segment.
 *
 *   sum_mod(data) -> int
 *       The sum of ``data``'s big-endian 16-bit words (an odd length padded with a zero byte)
 *       modulo 0xFFFF, 0..0xFFFE. ``data`` is any contiguous buffer (bytes, bytearray,
 *       memoryview).
 *
 *   segment_tcp(packet, version, t, end, mss) -> list[bytes]
 *       TSO in software: the segments of a TCP super-packet whose TCP header is at ``t`` and whose
 *       payload starts at ``end``, ``mss`` payload bytes each (the last may be shorter). Each is
 *       the header (IPv4 options or IPv6 extension headers included) with its lengths, IPv4
 *       identification (counting up) and checksum, TCP sequence number, flags (FIN and PSH on the
 *       last only, CWR on the first only) and TCP checksum made for it, then its payload: the
 *       bytes ipsec.offload._segment_tcp makes in Python, which checks the packet before either.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

/* 32-bit words in native order summed in 64 bits: 2**16 = 1 modulo 0xFFFF, so the sum of the
 * 32-bit words is the sum of the 16-bit ones modulo 0xFFFF. Read little-endian, each 16-bit word
 * is byte-swapped, which multiplies it by 256 modulo 0xFFFF; the result is scaled back. At most
 * 2**32 words of 2**32 fit in 64 bits without overflow: any buffer Python can hold. */
static uint64_t
sum_words(const unsigned char *p, Py_ssize_t n)
{
    uint64_t a = 0, b = 0;
    Py_ssize_t i = 0;
    for (; i + 8 <= n; i += 8) {
        uint32_t x, y;
        memcpy(&x, p + i, 4);
        memcpy(&y, p + i + 4, 4);
        a += x;
        b += y;
    }
    a += b;
    for (; i + 4 <= n; i += 4) {
        uint32_t x;
        memcpy(&x, p + i, 4);
        a += x;
    }
    /* the rest, 0..3 bytes, as they would sit in a native 32-bit word (zero padded) */
    if (i < n) {
        unsigned char tail[4] = {0, 0, 0, 0};
        uint32_t x;
        memcpy(tail, p + i, (size_t)(n - i));
        memcpy(&x, tail, 4);
        a += x;
    }
    a %= 0xFFFF;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    return a;
#else
    return (a * 256) % 0xFFFF;
#endif
}

static PyObject *
py_sum_mod(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0)
        return NULL;
    uint64_t s = sum_words((const unsigned char *)view.buf, view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLongLong(s);
}

static void
put16(unsigned char *p, unsigned v)
{
    p[0] = (unsigned char)(v >> 8);
    p[1] = (unsigned char)v;
}

/* RFC 1071 over a sum taken modulo 0xFFFF: its ones' complement, 0 when it is 0 (a header's
 * non-zero words never sum to a multiple of 0xFFFF other than as 0xFFFF itself). */
static unsigned
checksum_of(uint64_t sum)
{
    unsigned r = (unsigned)(sum % 0xFFFF);
    return r ? 0xFFFF - r : 0;
}

#define TCP_FIN 0x01
#define TCP_PSH 0x08
#define TCP_CWR 0x80

static PyObject *
py_segment_tcp(PyObject *self, PyObject *args)
{
    Py_buffer view;
    int version, t, end, mss;
    if (!PyArg_ParseTuple(args, "y*iiii", &view, &version, &t, &end, &mss))
        return NULL;
    const unsigned char *p = (const unsigned char *)view.buf;
    Py_ssize_t size = view.len;
    if ((version != 4 && version != 6) || t < (version == 4 ? 20 : 40) || end < t + 20 || end > size
        || mss <= 0 || end > 0xFFFF) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_ValueError, "segment_tcp: not a checked TCP super-packet");
        return NULL;
    }
    Py_ssize_t tail = size - end;
    Py_ssize_t last = tail > 0 ? (tail - 1) / mss : 0;
    PyObject *out = PyList_New(last + 1);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    uint32_t seq0 = ((uint32_t)p[t + 4] << 24) | ((uint32_t)p[t + 5] << 16) | ((uint32_t)p[t + 6] << 8) | p[t + 7];
    unsigned flags0 = p[t + 13];
    unsigned ident0 = ((unsigned)p[4] << 8) | p[5];
    uint64_t addresses = version == 4 ? sum_words(p + 12, 8) : sum_words(p + 8, 32);
    for (Py_ssize_t i = 0; i <= last; i++) {
        Py_ssize_t at = end + i * mss;
        Py_ssize_t chunk = size - at < mss ? size - at : mss;
        if (chunk < 0)
            chunk = 0;
        PyObject *seg = PyBytes_FromStringAndSize(NULL, end + chunk);
        if (seg == NULL) {
            Py_DECREF(out);
            PyBuffer_Release(&view);
            return NULL;
        }
        unsigned char *q = (unsigned char *)PyBytes_AS_STRING(seg);
        memcpy(q, p, (size_t)end);
        memcpy(q + end, p + at, (size_t)chunk);
        unsigned tcp_len = (unsigned)(end - t + chunk);
        uint32_t seq = seq0 + (uint32_t)i * (uint32_t)mss; /* modulo 2**32, as TCP counts */
        q[t + 4] = (unsigned char)(seq >> 24);
        q[t + 5] = (unsigned char)(seq >> 16);
        q[t + 6] = (unsigned char)(seq >> 8);
        q[t + 7] = (unsigned char)seq;
        unsigned flags = i == last ? flags0 : flags0 & ~(unsigned)(TCP_FIN | TCP_PSH);
        if (i)
            flags &= ~(unsigned)TCP_CWR;
        q[t + 13] = (unsigned char)flags;
        q[t + 16] = q[t + 17] = 0;
        if (version == 4) {
            put16(q + 2, (unsigned)t + tcp_len);
            put16(q + 4, (ident0 + (unsigned)i) & 0xFFFF);
            q[10] = q[11] = 0;
            put16(q + 10, checksum_of(sum_words(q, t)));
        } else {
            put16(q + 4, (unsigned)(t - 40) + tcp_len);
        }
        uint64_t sum = addresses + 6 + tcp_len + sum_words(q + t, end - t) + sum_words(q + end, chunk);
        put16(q + t + 16, checksum_of(sum));
        PyList_SET_ITEM(out, i, seg);
    }
    PyBuffer_Release(&view);
    return out;
}

static PyMethodDef methods[] = {
    {"sum_mod", py_sum_mod, METH_O, "sum_mod(data) -> the sum of its big-endian 16-bit words modulo 0xFFFF"},
    {"segment_tcp", py_segment_tcp, METH_VARARGS,
     "segment_tcp(packet, version, t, end, mss) -> the segments of a TCP super-packet"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_offload", "RFC 1071 sums and TCP segmentation for TUN offloads", -1, methods};

PyMODINIT_FUNC
PyInit__offload(void)
{
    return PyModule_Create(&module);
}
