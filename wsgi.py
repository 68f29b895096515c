import gc

from app import create_app

app = create_app()

# What start-up built lives as long as the process: move it out of the collector's way.
# Without this, a full collection walks all of it every few hundred requests, a pause of
# about 115 ms (bench/board.py: the board's render p95 129 ms, with it 21 ms).
gc.collect()
gc.freeze()
