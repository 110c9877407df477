"""Model-walking matrix reports on top of the conv core (:mod:`convscope.conv`): a model's conv layer as its
explicit matrix (report), the matrix drawn and printed (display), its singular values (spectrum)."""
