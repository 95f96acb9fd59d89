from _stub import missing

as_numpy = missing("mlio.integ.numpy.as_numpy")
