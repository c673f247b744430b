"""The one vocabulary of dimension names (DESIGN.md section 3). Rows/cols, never x/y."""

TIME = "time"  # seconds; every time axis also carries an integer ``frame`` coordinate
FRAME = "frame"
ROW = "row"
COL = "col"
ROI = "roi"
TRIAL = "trial"
LAG = "lag"  # seconds relative to the aligning event
SESSION = "session"

MOVIE_DIMS = (TIME, ROW, COL)
MASK_DIMS = (ROI, ROW, COL)
TRACE_DIMS = (ROI, TIME)
ALIGNED_DIMS = (TRIAL, ROI, LAG)
