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

static PyMethodDef methods[] = {
    {"sum_mod", py_sum_mod, METH_O, "sum_mod(data) -> the sum of its big-endian 16-bit words modulo 0xFFFF"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_offload", "RFC 1071 sums for TUN offloads", -1, methods};

PyMODINIT_FUNC
PyInit__offload(void)
{
    return PyModule_Create(&module);
}
