"""Demo catalogue generator: real, listenable songs made offline from espeak-ng and numpy.

Every work gets its own lyrics from a small grammar over its own slice of a word list, so works
differ in what is sung. Each version of a work sings those lyrics with a different espeak-ng
voice, speed and pitch over a different synthesised backing (same chord progression, other key,
tempo, timbre and drum pattern: covers share harmony, as real ones do). Vocals sit only a few dB
above the backing, lines are dropped or repeated per version and there is an instrumental intro,
so the catalogue is hard enough to exercise vocal filtering, transcription and retrieval.

Besides versions the catalogue holds instrumentals (no voice) and hard negatives (the exact
backing of some version with other lyrics), each under its own work_id so that they are
versions of nothing.

Modules, in the order a catalogue is made: ``words`` (lyrics), ``voice`` (espeak-ng singing),
``backing`` (chords, bass, drums, lead), ``plan`` (every random choice, from one seed),
``render`` (a planned track's stems) and ``writer`` (the catalogue folder and its tables). The
domain-randomised families of ``livi_tasks.build.synth`` share its folder writer and pitch helpers.
"""

from livi_tasks.build.demo.backing import BackingSpec, synthesise_backing
from livi_tasks.build.demo.plan import DemoParameters, DemoPlan, TrackSpec, plan_demo_catalogue
from livi_tasks.build.demo.render import SungLine, TrackStems, render_track_stems
from livi_tasks.build.demo.words import LINE_TEMPLATES
from livi_tasks.build.demo.writer import GENERATOR_VERSION, make_demo_catalogue

__all__ = [
    "GENERATOR_VERSION",
    "LINE_TEMPLATES",
    "BackingSpec",
    "DemoParameters",
    "DemoPlan",
    "SungLine",
    "TrackSpec",
    "TrackStems",
    "make_demo_catalogue",
    "plan_demo_catalogue",
    "render_track_stems",
    "synthesise_backing",
]
