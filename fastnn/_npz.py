"""Read every array of an ``.npz`` file without pickle, with errors that speak of the file.

``np.load`` would pass on zipfile's and NumPy's own exceptions (``BadZipFile``,
hints about ``allow_pickle``), read a member's data only as far as its header
says (so that zipfile never checks the CRC-32 of a member whose header was
damaged), and try to unpickle any file that is not a zip archive. This reader
reads each member to its end, so that every byte of every array is checked.
"""

import math
import zipfile
import zlib

import numpy as np

# What zipfile, zlib and lzma raise for a damaged or truncated archive (seen when truncating a
# saved model at every length and flipping every bit of its zip headers, stored or compressed):
# OSError for a seek before the start or a bad lzma stream, NotImplementedError and RuntimeError
# for flag bits that claim another compression or encryption, EOFError for data cut short.
ZIP_DAMAGE = (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError)
# What NumPy's .npy header parsing raises for a damaged header (it evaluates a Python literal).
HEADER_DAMAGE = (ValueError, TypeError, SyntaxError, KeyError)
HEADER_READERS = {(1, 0): np.lib.format.read_array_header_1_0,
                  (2, 0): np.lib.format.read_array_header_2_0}


class BadArray(Exception):
    """A member of the archive is not a plain .npy array; the message says which and why."""


def read_npz(path, what):
    """``{name: array}`` for every array of the ``.npz`` file at ``path``.

    Raises ``ValueError("{path} is not {what}: ...")`` for a file that is not a
    zip archive, is truncated or damaged, or holds an array of Python objects
    (which would need unpickling). A missing file raises ``FileNotFoundError``.
    """
    with open(path, "rb") as file:
        try:
            with zipfile.ZipFile(file) as archive:
                return {info.filename.removesuffix(".npy"): _read_array(archive, info)
                        for info in archive.infolist()}
        except BadArray as error:
            raise ValueError(f"{path} is not {what}: {error}") from error
        except ZIP_DAMAGE as error:
            raise ValueError(f"{path} is not {what}: it is not a zip archive, or a truncated or "
                             f"damaged one ({error})") from error


def _read_array(archive, info):
    name = info.filename.removesuffix(".npy")
    with archive.open(info) as member:
        try:
            shape, fortran_order, dtype = HEADER_READERS[np.lib.format.read_magic(member)](member)
        except HEADER_DAMAGE as error:
            raise BadArray(f"array {name!r} has no valid .npy header") from error
        if dtype.hasobject:
            raise BadArray(f"array {name!r} holds Python objects, which load only by unpickling, "
                           "and fastnn never unpickles a file")
        data = member.read()  # to the end, so that zipfile checks the CRC-32
    size = math.prod(shape) * dtype.itemsize
    if len(data) != size:
        raise BadArray(f"array {name!r} has {len(data)} bytes of data where its header says {size}")
    # A bytearray, so that the array is writable (a loaded model trains on).
    return np.frombuffer(bytearray(data), dtype).reshape(shape, order="F" if fortran_order else "C")
