"""``python -m voterolls``, and the entry file for ``spark-submit``: the command line run by a cluster's driver.

``spark-submit`` takes a Python *file* as its application; the installed
``voterolls`` console script has no ``.py`` name, so the cluster run points
at this file instead (docs/SCALE.md, "How to run it")::

    spark-submit --master yarn ... "$(python -c 'import voterolls.__main__ as m; print(m.__file__)')" \\
        link --workspace /shared/W --engine spark --model /shared/W_sample/link/model.json
"""

from __future__ import annotations

if __name__ == "__main__":
    from voterolls.cli import main

    main()
