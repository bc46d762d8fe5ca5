"""Registry of driver models, looked up by the name a scenario gives in `DriverConfig.model`.

A driver model is a class with a pydantic `Settings` model and a constructor
`(settings, context)`, registered under a name:

    @register_driver_model("my-gpus")
    class MyGpus:
        Settings = MyGpuSettings

        def __init__(self, settings: MyGpuSettings, context: ModelContext) -> None: ...

The built-in models register themselves when `sim.drivers` is imported; a user
model registers itself when its module is imported, before the scenario is
loaded.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any, ClassVar, Protocol, TypeVar

from pydantic import BaseModel, ValidationError

from sim.cluster.driver import DriverModel, ModelContext


class DriverModelClass(DriverModel, Protocol):
    """Interface of a registered model class: callbacks, a `Settings` schema, the constructor."""

    Settings: ClassVar[type[BaseModel]]

    def __init__(self, settings: Any, context: ModelContext) -> None: ...


class UnknownNameError(KeyError):
    """A registry lookup by an unknown name; the message lists the names that exist."""

    def __str__(self) -> str:
        return str(self.args[0]) if self.args else ""


M = TypeVar("M", bound=type[DriverModelClass])

_MODELS: dict[str, type[DriverModelClass]] = {}


def register_driver_model(name: str) -> Callable[[M], M]:
    """Return a class decorator that registers a driver model under `name`.

    Raises:
        ValueError: the name is empty or already taken by another class.
    """

    def decorator(cls: M) -> M:
        if not name:
            raise ValueError("a driver model needs a non-empty name")
        existing = _MODELS.get(name)
        if existing is not None and existing is not cls:
            raise ValueError(
                f"driver model name {name!r} is already registered by "
                f"{existing.__module__}.{existing.__qualname__}"
            )
        _MODELS[name] = cls
        return cls

    return decorator


def get_driver_model(name: str) -> type[DriverModelClass]:
    """Return the driver model class registered under `name`.

    Raises:
        UnknownNameError: (a KeyError) no model has that name; the message lists the available ones.
    """
    try:
        return _MODELS[name]
    except KeyError:
        raise UnknownNameError(
            f"unknown driver model {name!r}; available: {', '.join(available_driver_models())}"
        ) from None


def available_driver_models() -> list[str]:
    """Return the registered driver model names, sorted."""
    return sorted(_MODELS)


def validate_driver_model_settings(
    name: str, settings: Mapping[str, Any] | BaseModel | None
) -> BaseModel:
    """Return the settings of model `name` validated by its `Settings` schema.

    Raises:
        ValueError: the model name is unknown or the settings are invalid; the
            message names the model and every invalid field.
    """
    try:
        cls = get_driver_model(name)
    except UnknownNameError as error:
        raise ValueError(str(error)) from None
    if isinstance(settings, cls.Settings):
        return settings
    data = settings.model_dump() if isinstance(settings, BaseModel) else dict(settings or {})
    try:
        return cls.Settings.model_validate(data)
    except ValidationError as error:
        raise ValueError(f"invalid model_settings for driver model {name!r}: {error}") from None


def build_driver_model(
    name: str, settings: Mapping[str, Any] | BaseModel | None, context: ModelContext
) -> DriverModel:
    """Build the driver model registered under `name` with validated settings.

    Raises:
        ValueError: the model name is unknown or the settings are invalid.
    """
    validated = validate_driver_model_settings(name, settings)
    return get_driver_model(name)(validated, context)
