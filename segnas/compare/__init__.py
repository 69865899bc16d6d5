"""``segnas compare``: every method searched with one time budget on one dataset and device, each result
retrained with one recipe, one table and a latency-vs-mIoU plot with its Pareto front.

``plan`` checks the command and builds every config, ``tasks`` are the search and retrain stages as
executor tasks, ``cost`` measures the retrained networks together, ``table`` writes the outputs and
``run`` ties them together, resumably.
"""

from .run import CompareOptions, plan, run_compare

__all__ = ["CompareOptions", "plan", "run_compare"]
