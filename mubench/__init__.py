"""mubench: a benchmark suite for machine unlearning on image classifiers."""
from mubench.unlearn.api import METHODS, MonitorReading, UnlearnContext, UnlearnData, Unlearner, register_method
from mubench.core.errors import MubenchError

__all__ = ["METHODS", "MonitorReading", "MubenchError", "UnlearnContext", "UnlearnData", "Unlearner",
           "register_method"]
