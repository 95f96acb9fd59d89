from _stub import Placeholder


class Client(Placeholder):
    pass
