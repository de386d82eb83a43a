"""Data: the official layouts of ACDC, MSCMRseg and MyoPS, their readers and checks, the synthetic phantom,
scribbles, slice geometry and the download of the public releases."""
