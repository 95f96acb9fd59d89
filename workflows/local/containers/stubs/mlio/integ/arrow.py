from _stub import missing

as_arrow_file = missing("mlio.integ.arrow.as_arrow_file")
