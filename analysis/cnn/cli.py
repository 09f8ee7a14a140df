"""``lookwhere precompute`` (built by the CNN-maps work)."""


def add_arguments(parser):
    pass


def main(args):
    raise SystemExit("lookwhere precompute is not built yet")
