"""The names of the formats the importers read, apart from the importers so that listing them is cheap."""

LONGFORM = "rankroute"
ROUTERBENCH_WIDE = "routerbench"
ROUTERBENCH_SUBSET = "routerbench-subset"
ROUTELLM = "routellm"
ALPACAEVAL = "alpacaeval"

FORMATS: tuple[str, ...] = (LONGFORM, ROUTERBENCH_WIDE, ROUTERBENCH_SUBSET, ROUTELLM, ALPACAEVAL)
