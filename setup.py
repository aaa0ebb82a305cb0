"""Build hook for the optional C extensions (everything else is in pyproject.toml).

``snakeswan.io._mmsg`` wraps sendmmsg/recvmmsg (Linux). It is optional: without a compiler or the
Python headers the install goes on and ``snakeswan.io.batch`` sends and receives one packet per
system call instead. ``snakeswan.ipsec._offload`` sums checksums for the TUN offloads; without it
``snakeswan.ipsec.offload`` does the same sums in Python."""

import sys

from setuptools import Extension, setup

ext_modules = []
if sys.platform.startswith("linux"):
    ext_modules.append(Extension("snakeswan.io._mmsg", ["src/snakeswan/io/_mmsg.c"], optional=True))
ext_modules.append(Extension("snakeswan.ipsec._offload", ["src/snakeswan/ipsec/_offload.c"], optional=True))

setup(ext_modules=ext_modules)
