from _stub import Placeholder


class DataFrame(Placeholder):
    pass


class Series(Placeholder):
    pass
