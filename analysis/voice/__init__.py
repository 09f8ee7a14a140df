"""The naming task's audio: utterance onsets and offsets, the names said, and their review.

- :mod:`analysis.voice.detect` — utterances in one recording (Silero VAD or an energy threshold,
  ends refined to the acoustic rise and fall);
- :mod:`analysis.voice.recordings` — the per-trial WAVs of sessions and their image-relative times;
- :mod:`analysis.voice.names` — the object name said (pocketsphinx with the image's names);
- :mod:`analysis.voice.corrections` — reviewed values saved beside the automatic ones.

Nothing here imports torch; importing this package imports nothing (the ``lookwhere`` command
builds its parser from :mod:`analysis.voice.cli` cheaply).
"""
