"""Bodies as the database keeps them: deflated, and deflated where there is CPU to spare.

Sanitised and raw HTML are most of a story's bytes. Stored deflated they take
about a third of the room, but deflating is also one of the larger costs of
storing an entry, and the process that stores is the one an update waits on.
So the reading worker deflates the bodies it has just cleaned and hands them
over as `Packed` strings: ordinary text to everything else, which storage
writes without deflating again. Anything made another way (a string edited
after reading, an entry read in the storing process) is deflated on writing.
"""

from __future__ import annotations

from zlib_ng import zlib_ng

#: zlib-ng's level 1 is about three times as fast as zlib's and writes the same
#: format (rows deflated by the standard zlib read back alike), for a little
#: less saving: a third of the text's bytes instead of three tenths.
LEVEL = 1


class Packed(str):
    """Text that remembers its deflated form."""

    # Pickled with both forms: sending only the deflated one would make the
    # storing process inflate every body it is handed.
    deflated: bytes


def pack(text: str) -> Packed:
    """`text` with its deflated form made now."""
    if isinstance(text, Packed):
        return text
    packed = Packed(text)
    packed.deflated = deflate(text)
    return packed


def deflate(text: str) -> bytes:
    """The stored form of `text`: the remembered one when it has one."""
    if isinstance(text, Packed):
        return text.deflated
    return zlib_ng.compress(text.encode("utf-8"), LEVEL)


def inflate(data: bytes) -> Packed:
    """Text from its stored form, remembering it: written back unchanged, it costs nothing."""
    packed = Packed(zlib_ng.decompress(data).decode("utf-8"))
    packed.deflated = data
    return packed
