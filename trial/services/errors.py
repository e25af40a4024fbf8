"""Domain errors carry an HTTP status and a message a person can act on."""


class TrialError(Exception):
    status = 400
    code = "invalid"

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message


class InvalidInput(TrialError):
    status = 400
    code = "invalid"


class NotAllowed(TrialError):
    status = 403
    code = "forbidden"


class NotFound(TrialError):
    status = 404
    code = "not_found"


class Conflict(TrialError):
    status = 409
    code = "conflict"
