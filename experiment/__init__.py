"""The lab side (SPEC §4): the PsychoPy naming task with eye tracker, microphone and safe records.

Modules
-------
config
    :class:`~experiment.config.SessionConfig`, the validated settings of a session.
trackers
    One tracker interface; backends ``eyelink``, ``eyelink-dummy`` and ``simulated``.
calibration
    EyeLink calibration graphics in the PsychoPy window (``pylink.EyeLinkCustomDisplay``).
task
    :class:`~experiment.task.Session`: runs the trials.
lifecycle
    What a session opens, in which order; its manifest and segments; the one shutdown path.
presentation
    One trial's image period: onset flip, frame loop, offset flip, the trial's row.
operator_screens
    The screens that wait for a person: drift correction, pause, quit confirmation.
services
    What every frame loop does: service the live stream, read the operator's keys.
timing
    Refresh period, dropped frames, overruns.
records
    Append-only session records and what ``--resume`` reads back.
microphone
    One input stream per session, one WAV per trial.
preflight
    Every check that can fail before the participant sees anything.
sender, stream
    The live stream to the analysis server (wire protocol in :mod:`lookwhere.protocol`).
cli
    ``lookwhere run``.

The experiment process never imports torch or :mod:`analysis`.
"""
