"""The speech synthesis voices Debian packages, found on this machine, and one call to make any
of them say a sentence at a given speaking rate and pitch.

Engines: espeak-ng (its voice variants), MBROLA diphone voices through espeak-ng (``mb-xx``),
RHVoice, Festival, Flite and SVOX Pico. ``find_voices`` lists what is installed; several
packages carry recordings of the same person (CMU's slt, kal and awb, the MBROLA databases that
Festival also wraps), and each person is kept once.

Example
-------
>>> voice = Voice("espeak", "en+m3", "en", "male")
>>> voice.key
'espeak:en+m3'
"""

import glob
import os
import re
import shutil
import subprocess
import tempfile
import zlib
from typing import NamedTuple

MBROLA_DATA = "/usr/share/mbrola"
RHVOICE_DATA = "/usr/share/RHVoice/voices"
FESTIVAL_DATA = "/usr/share/festival/voices"
PICO_DATA = "/usr/share/pico/lang"

# espeak-ng variants that do not sound like a person (whisper, robots, effects).
ESPEAK_SKIPPED = {"whisper", "whisperf", "croak", "demonic", "unirobot", "anikarobot",
                  "anxiousandy", "tweaky", "storm", "mr serious", "gene2"}
# Languages the espeak-ng variants speak (one per variant, chosen by name).
ESPEAK_LANGUAGES = ["en", "de", "fr", "es", "it", "pl", "cs", "nl", "ru", "pt"]
RHVOICE_LANGUAGES = {"english": "en", "russian": "ru", "ukrainian": "uk", "polish": "pl",
                     "brazilian-portuguese": "pt_BR", "portuguese": "pt", "esperanto": "eo",
                     "kyrgyz": "ky", "tatar": "tt", "macedonian": "mk", "albanian": "sq",
                     "georgian": "ka", "czech": "cs", "slovak": "sk"}
FESTIVAL_LANGUAGES = {"english": "en", "us": "en", "catalan": "ca", "czech": "cs",
                      "finnish": "fi", "hindi": "hi", "italian": "it", "marathi": "mr",
                      "russian": "ru", "spanish": "es", "telugu": "te"}
FESTIVAL_ENCODINGS = {"cs": "iso-8859-2", "ca": "latin-1", "es": "latin-1", "fi": "latin-1",
                      "it": "latin-1", "en": "latin-1"}
FESTIVAL_FEMALE = {"upc_ca_ona_hts", "czech_dita", "suo_fi_lj_diphone", "lp_diphone",
                   "cmu_us_slt_arctic_hts"}
FLITE_VOICES = {"kal": "male", "awb": "male", "rms": "male", "slt": "female"}
# The same recorded person in several packages: the first one found is kept.
SAME_PERSON = [["rhvoice:slt", "flite:slt", "festival:cmu_us_slt_arctic_hts"],
               ["flite:kal", "festival:kal_diphone"], ["rhvoice:bdl"], ["flite:awb"],
               ["flite:rms"], ["rhvoice:clb"],
               ["rhvoice:aleksandr-hq", "rhvoice:aleksandr"]]   # one speaker, two voice builds


class Voice(NamedTuple):
    """One synthetic speaker: engine, the engine's name for it, language code, gender."""

    engine: str
    name: str
    language: str
    gender: str

    @property
    def key(self) -> str:
        return f"{self.engine}:{self.name}"


def find_voices() -> list[Voice]:
    """Every usable voice installed here, one per recorded person, in a stable order."""
    voices = (_espeak_variants() + _mbrola_voices() + _rhvoice_voices() + _festival_voices()
              + _flite_voices() + _pico_voices())
    keys = {v.key for v in voices}
    dropped = {key for person in SAME_PERSON
               for key in [k for k in person if k in keys][1:]}
    return [v for v in voices if v.key not in dropped]


def synthesize(voice: Voice, text: str, path: str, rate: float = 1.0, pitch: float = 1.0
               ) -> None:
    """Write ``voice`` saying ``text`` to the wav file ``path``; ``rate`` and ``pitch`` are
    factors around the voice's own (1.0). Engines without a pitch control (Festival, Flite)
    keep their own; the caller varies it afterwards. ``RuntimeError`` if nothing was made."""
    with tempfile.TemporaryDirectory() as scratch:
        text_file = os.path.join(scratch, "text.txt")
        _write_text(voice, text, text_file)
        if voice.engine in ("espeak", "mbrola"):
            command = ["espeak-ng", "-v", voice.name, "-s", str(round(165 * rate)),
                       "-p", str(round(50 * pitch)), "-w", path, "-f", text_file]
        elif voice.engine == "rhvoice":
            command = ["RHVoice-test", "-p", voice.name, "-r", str(round(100 * rate)),
                       "-t", str(round(100 * pitch)), "-i", text_file, "-o", path]
        elif voice.engine == "festival":
            command = ["text2wave", "-o", path, "-eval", f"(voice_{voice.name})",
                       "-eval", f"(Parameter.set 'Duration_Stretch {1 / rate:.3f})", text_file]
        elif voice.engine == "flite":
            command = ["flite", "-voice", voice.name, "--setf",
                       f"duration_stretch={1 / rate:.3f}", "-f", text_file, "-o", path]
        elif voice.engine == "pico":
            marked = (f"<speed level='{round(100 * rate)}'><pitch level='{round(100 * pitch)}'>"
                      f"{text}</pitch></speed>")
            command = ["pico2wave", "-l", voice.name, "-w", path, marked]
        else:
            raise ValueError(f"unknown speech synthesis engine {voice.engine!r}")
        done = subprocess.run(command, capture_output=True, text=True, errors="replace",
                              timeout=120, check=False)
    if done.returncode != 0 or not os.path.isfile(path) or os.path.getsize(path) <= 44:
        problem = (done.stderr.strip().splitlines() or ["no audio written"])[-1]
        raise RuntimeError(f"{voice.key}: synthesis failed: {problem}")


# Festival saying many texts in one process (its start-up, loading the voice, is most of a
# file's cost): each text file is said as text2wave says one (its text mode, every utterance's
# wave appended, the header written last) into its own wav file, so the audio is the same.
FESTIVAL_SCRIPT = """(load (path-append datadir "init.scm"))
(gc-status nil)
(defvar demo_fp nil)
(defvar demo_samples 0)
(defvar demo_utt nil)
(define (demo_append utt)
  (if (eq? demo_samples 0)
      (wave.save.header demo_fp (utt.wave utt) 'riff nil (list (list "numsamples" 0))))
  (set! demo_samples (+ demo_samples (get_param 'num_samples (wave.info (utt.wave utt)) 0)))
  (wave.save.data.fp (utt.wave utt) demo_fp 'riff nil)
  (set! demo_utt utt))
(set! tts_hooks (list utt.synth demo_append))
(define (demo_say text_file wav_file stretch)
  (Parameter.set 'Duration_Stretch stretch)
  (set! demo_samples 0)
  (set! demo_utt nil)
  (set! demo_fp (fopen wav_file "wb"))
  (tts_file text_file (tts_find_text_mode text_file auto-text-mode-alist))
  (if demo_utt
      (begin (fseek demo_fp 0 0)
             (wave.save.header demo_fp (utt.wave demo_utt) 'riff nil
                               (list (list "numsamples" demo_samples)))))
  (fclose demo_fp)
  (if demo_utt (format t "made %s\n" wav_file)))
"""


def synthesize_festival(voice: Voice, items: list[tuple[str, str, float]]) -> set[str]:
    """Festival's ``voice`` says each ``(text, wav path, rate)`` of ``items``, all in one
    process, as ``synthesize`` would one by one; returns the paths it finished. One it did
    not (Festival failed, or took too long) is to be made alone by ``synthesize``, which says
    why it cannot."""
    with tempfile.TemporaryDirectory() as scratch:
        calls = []
        for index, (text, path, rate) in enumerate(items):
            text_file = os.path.join(scratch, f"{index}.txt")
            _write_text(voice, text, text_file)
            calls.append(f'(demo_say "{_scheme(text_file)}" "{_scheme(path)}" {1 / rate:.3f})')
        script = os.path.join(scratch, "say.scm")
        with open(script, "w", encoding="utf-8") as handle:
            handle.write("\n".join([FESTIVAL_SCRIPT, f"(voice_{voice.name})", *calls, ""]))
        try:
            said = subprocess.run(["festival", "--script", script], capture_output=True,
                                  timeout=60 + 10 * len(items), check=False).stdout
        except subprocess.TimeoutExpired as stopped:
            said = stopped.stdout or b""          # what was finished before is kept
        except OSError:
            return set()
    lines = said.decode("utf-8", errors="replace").splitlines()
    return {line[len("made "):] for line in lines if line.startswith("made ")}


def _write_text(voice: Voice, text: str, path: str) -> None:
    """The text file ``voice``'s engine reads: Festival's diphone voices read 8-bit text."""
    encoding = "utf-8"
    if voice.engine == "festival":
        encoding = FESTIVAL_ENCODINGS.get(voice.language, "utf-8")
    with open(path, "w", encoding=encoding, errors="ignore") as handle:
        handle.write(text + "\n")


def _scheme(text: str) -> str:
    """``text`` inside a Scheme string literal."""
    return text.replace("\\", "\\\\").replace('"', '\\"')


def _run(command: list[str]) -> str:
    if shutil.which(command[0]) is None:
        return ""
    done = subprocess.run(command, capture_output=True, text=True, errors="replace", timeout=60,
                          check=False)
    return done.stdout if done.returncode == 0 else ""


def _espeak_table(kind: str) -> list[tuple[str, str, str]]:
    """(language, gender letter, file) rows of ``espeak-ng --voices=<kind>``."""
    rows = []
    for line in _run(["espeak-ng", f"--voices={kind}"]).splitlines()[1:]:
        match = re.match(r"\s*\d+\s+(\S+)\s+\S*/([MF-])\s+.*?\s(\S+/\S+)", line)
        if match:
            rows.append(match.groups())
    return rows


def _espeak_variants() -> list[Voice]:
    """One voice per variant, except that the variants which keep espeak-ng's own pitch and
    formant frequencies (they only switch the synthesiser mode, e.g. klatt2..klatt6, or the
    formant widths) all sound like its default voice: the first of them stands for all."""
    voices, default_kept = [], False
    match = re.search(r"Data at:\s*(\S+)", _run(["espeak-ng", "--version"]))
    data = match.group(1) if match else ""
    for _, gender, file in _espeak_table("variant"):
        variant = file.split("/", 1)[1]
        if variant.lower() in ESPEAK_SKIPPED or gender == "-":
            continue
        if not _changes_voice(os.path.join(data, "voices", file)):
            if default_kept:
                continue
            default_kept = True
        language = ESPEAK_LANGUAGES[zlib.crc32(variant.encode()) % len(ESPEAK_LANGUAGES)]
        voices.append(Voice("espeak", f"{language}+{variant}", language,
                            "male" if gender == "M" else "female"))
    return voices


def _changes_voice(variant_file: str) -> bool:
    """Whether an espeak-ng variant file moves the pitch or a formant frequency away from
    espeak-ng's defaults (pitch 82 118, every formant frequency at 100 %)."""
    try:
        with open(variant_file, encoding="utf-8", errors="replace") as handle:
            lines = [line.split("//")[0].split() for line in handle]
    except OSError:
        return True            # unknown: keep the variant
    for words in lines:
        if words[:1] == ["pitch"] and words[1:3] != ["82", "118"]:
            return True
        if words[:1] == ["formant"] and len(words) > 2 and words[2] != "100":
            return True
    return False


def _mbrola_voices() -> list[Voice]:
    voices = []
    for language, gender, file in _espeak_table("mb"):
        name = file.split("/", 1)[1]                      # mb-en1
        database = name[3:]
        if os.path.isfile(os.path.join(MBROLA_DATA, database, database)) and _loads(name):
            voices.append(Voice("mbrola", name, language.replace("-", "_"),
                                "female" if gender == "F" else "male"))
    return voices


def _loads(espeak_voice: str) -> bool:
    """Whether espeak-ng can speak with a voice it lists: some MBROLA voices are listed (their
    database installed) but refused, e.g. mb-cn1, "voice does not exist"."""
    with tempfile.TemporaryDirectory() as scratch:
        try:
            done = subprocess.run(["espeak-ng", "-v", espeak_voice, "-w",
                                   os.path.join(scratch, "probe.wav"), "a"],
                                  capture_output=True, timeout=60, check=False)
        except (subprocess.TimeoutExpired, OSError):
            return False
    return done.returncode == 0


def _rhvoice_voices() -> list[Voice]:
    voices = []
    if shutil.which("RHVoice-test") is None:
        return voices
    for info_path in sorted(glob.glob(os.path.join(RHVOICE_DATA, "*", "voice.info"))):
        with open(info_path, encoding="utf-8", errors="replace") as handle:
            info = dict(line.strip().split("=", 1) for line in handle if "=" in line)
        language = RHVOICE_LANGUAGES.get(info.get("language", "").lower())
        if language and "name" in info:
            voices.append(Voice("rhvoice", os.path.basename(os.path.dirname(info_path)),
                                language, info.get("gender", "unknown").lower()))
    return voices


def _festival_voices() -> list[Voice]:
    voices = []
    if shutil.which("text2wave") is None:
        return voices
    for folder in sorted(glob.glob(os.path.join(FESTIVAL_DATA, "*", "*"))):
        name = os.path.basename(folder)
        language = FESTIVAL_LANGUAGES.get(os.path.basename(os.path.dirname(folder)))
        if language and os.path.isdir(folder) and not name.endswith(("_mbrola", ".common")):
            voices.append(Voice("festival", name, language,
                                "female" if name in FESTIVAL_FEMALE else "male"))
    return voices


def _flite_voices() -> list[Voice]:
    listed = _run(["flite", "-lv"]).split()
    return [Voice("flite", name, "en", gender) for name, gender in FLITE_VOICES.items()
            if name in listed]


def _pico_voices() -> list[Voice]:
    if shutil.which("pico2wave") is None:
        return []
    languages = sorted({os.path.basename(p)[:5] for p in glob.glob(f"{PICO_DATA}/*_ta.bin")})
    return [Voice("pico", lang, lang.replace("-", "_"), "female") for lang in languages]
