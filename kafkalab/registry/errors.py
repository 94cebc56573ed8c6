"""The registry's errors, as Confluent Schema Registry answers them: an HTTP status plus an error code."""

from __future__ import annotations


class RegistryError(Exception):
    """Turned into `{"error_code": ..., "message": ...}` with `status` by the views."""

    status = 500
    error_code = 50001

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class SubjectNotFound(RegistryError):
    status, error_code = 404, 40401


class VersionNotFound(RegistryError):
    status, error_code = 404, 40402


class SchemaNotFound(RegistryError):
    status, error_code = 404, 40403


class SubjectSoftDeleted(RegistryError):
    status, error_code = 404, 40404


class SubjectNotSoftDeleted(RegistryError):
    status, error_code = 404, 40405


class VersionSoftDeleted(RegistryError):
    status, error_code = 404, 40406


class VersionNotSoftDeleted(RegistryError):
    status, error_code = 404, 40407


class SubjectConfigNotFound(RegistryError):
    status, error_code = 404, 40408


class IncompatibleSchema(RegistryError):
    status, error_code = 409, 409


class InvalidSchema(RegistryError):
    status, error_code = 422, 42201


class InvalidVersion(RegistryError):
    status, error_code = 422, 42202


class InvalidCompatibilityLevel(RegistryError):
    status, error_code = 422, 42203


class BadRequest(RegistryError):
    status, error_code = 400, 400


class WriteForbidden(RegistryError):
    status, error_code = 403, 40301


class CredentialsRequired(RegistryError):
    """No (valid) credentials where writes need them: 401, as Confluent's with basic auth on."""

    status, error_code = 401, 40101


class StoreUnavailable(RegistryError):
    """Kafka (where the registry keeps its schemas) did not answer: retriable, as Confluent's 50002."""

    status, error_code = 503, 50002
