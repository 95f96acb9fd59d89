from _stub import missing

to_coo_matrix = missing("mlio.integ.scipy.to_coo_matrix")
