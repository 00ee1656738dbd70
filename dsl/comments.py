"""Where a comment starts on a line of policy text.

Input: one source line. Output: the index of the `#` that starts its comment,
or -1. Shared by the AST builder (to end spans before trailing comments) and
the formatter (to keep comments), so both agree on what is a comment.
"""

from __future__ import annotations


def comment_start(line: str) -> int:
    """Index of the `#` that starts a comment on this line, or -1.

    Mirrors the lexer's STRING token so that a `#` inside a string literal is
    not mistaken for a comment (strings never span lines).
    """
    in_string = False
    index = 0
    while index < len(line):
        char = line[index]
        if in_string and char == "\\":
            index += 2
            continue
        if char == '"':
            in_string = not in_string
        elif char == "#" and not in_string:
            return index
        index += 1
    return -1
