"""CLI for `tallrec` (placeholder until its issue lands)."""

from ..errors import AllmrecError


def register_train(sub):
    p = sub.add_parser("tallrec", help="(not implemented yet)")
    p.set_defaults(func=_todo)


def _todo(args):
    raise AllmrecError("this command is not implemented yet")
