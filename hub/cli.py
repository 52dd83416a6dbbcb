"""CLI for `push` (placeholder until its issue lands)."""

from allmrec.errors import AllmrecError


def register(sub):
    p = sub.add_parser("push", help="(not implemented yet)")
    p.set_defaults(func=_todo)


def _todo(args):
    raise AllmrecError("this command is not implemented yet")
