"""The course's own errors: what a learner can fix, each with a message that says how.

    CourseError                  the family; the command line prints one line and exits 2 for these
      CheckpointError            a checkpoint or manifest that is missing, altered, corrupt or incompatible
      DataNotFoundError          MNIST not under the data root (and no download allowed or possible)
      ConfigError                a setting, model name, sampler name or option that cannot be right
      TrainingDiverged           the loss became NaN or infinite (says which model, step and loss)

Any other exception raised inside `helpers` is a bug and keeps its traceback. ConfigError is also a
ValueError and TrainingDiverged a FloatingPointError, so code that catches those keeps working.
"""

from __future__ import annotations


class CourseError(Exception):
    """An error the user can act on; its message says what to do."""


class CheckpointError(CourseError, RuntimeError):
    """A checkpoint that is missing, altered, corrupt or incompatible; the message says what to do."""


class DataNotFoundError(CourseError, RuntimeError):
    """A dataset that is not on disk and cannot be downloaded; the message says where to put it."""


class ConfigError(CourseError, ValueError):
    """A setting, name or option that cannot be right (unknown model or sampler, bad COURSE_* value)."""


class TrainingDiverged(CourseError, FloatingPointError):
    """The training loss stopped being finite; the message names the model, the step and the loss."""
