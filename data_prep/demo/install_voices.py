"""Install every speech synthesis voice Debian packages (run as root), then list them.

    python -m data_prep.demo.install_voices

MBROLA voices, RHVoice and SVOX Pico sit in Debian's contrib and non-free components. Their
sources entry is derived from the machine's own Debian source (same mirror, suites and key),
never a hard-coded host, and written to ``/etc/apt/sources.list.d/ecapa-speaker-voices.sources``.
Without root, or without apt, nothing is installed and the voices already present are listed.
"""

import glob
import os
import re
import subprocess
import sys
from collections import Counter

from data_prep.demo.voices import find_voices

SOURCES_FILE = "/etc/apt/sources.list.d/ecapa-speaker-voices.sources"
BASE_PACKAGES = ["espeak-ng", "mbrola", "rhvoice", "festival", "flite", "libttspico-utils"]
# Voice packages by name; 8 kHz duplicates of 16 kHz voices and -dev/-doc packages left out.
VOICE_PACKAGES = re.compile(r"^(mbrola-\w+|rhvoice-[\w-]+|festvox-[\w-]+)$")
LEFT_OUT = re.compile(r"(-dev|-doc|-common|8k)$")


def debian_sources(sources_dir: str = "/etc/apt/sources.list.d",
                   sources_list: str = "/etc/apt/sources.list") -> list[dict[str, str]]:
    """The machine's Debian ``deb`` entries with a ``main`` component, as deb822 fields,
    from ``*.sources`` files and one-line ``sources.list`` entries (our own file excluded)."""
    entries = []
    for path in sorted(glob.glob(os.path.join(sources_dir, "*.sources"))):
        if os.path.basename(path) == os.path.basename(SOURCES_FILE):
            continue
        with open(path, encoding="utf-8") as handle:
            for block in re.split(r"\n\s*\n", handle.read()):
                fields = dict(re.findall(r"^([\w-]+):\s*(.+)$", block, flags=re.MULTILINE))
                if fields.get("Types", "").split()[:1] == ["deb"] and \
                        "main" in fields.get("Components", "").split():
                    entries.append(fields)
    one_line = sorted(glob.glob(os.path.join(sources_dir, "*.list")))
    for path in ([sources_list] if os.path.isfile(sources_list) else []) + one_line:
        with open(path, encoding="utf-8") as handle:
            for line in handle:
                match = re.match(r"^deb\s+(\[[^\]]*\]\s+)?(\S+)\s+(\S+)\s+(.*)$", line.strip())
                if match and "main" in match.group(4).split():
                    fields = {"Types": "deb", "URIs": match.group(2), "Suites": match.group(3)}
                    signed = re.search(r"signed-by=(\S+?)[\s\]]", match.group(1) or "")
                    if signed:
                        fields["Signed-By"] = signed.group(1)
                    entries.append(fields)
    return entries


def contrib_non_free_entry(entries: list[dict[str, str]]) -> str:
    """deb822 text adding ``contrib non-free`` for every source that has ``main``."""
    if not entries:
        raise ValueError("no Debian 'deb ... main' source found in /etc/apt: cannot derive "
                         "contrib and non-free sources")
    blocks = []
    for fields in entries:
        lines = ["Types: deb", f"URIs: {fields['URIs']}", f"Suites: {fields['Suites']}",
                 "Components: contrib non-free"]
        if "Signed-By" in fields:
            lines.append(f"Signed-By: {fields['Signed-By']}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def install() -> None:
    """Enable contrib / non-free, then install the engines and every voice package."""
    with open(SOURCES_FILE, "w", encoding="utf-8") as handle:
        handle.write(contrib_non_free_entry(debian_sources()))
    # DEBCONF_NOWARNINGS: no "delaying package configuration, since apt-utils is not
    # installed", which a user cannot act on.
    apt = {**os.environ, "DEBIAN_FRONTEND": "noninteractive", "DEBCONF_NOWARNINGS": "yes"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=apt)
    listing = subprocess.run(["apt-cache", "pkgnames"], capture_output=True, text=True,
                             check=True).stdout.split()
    voices = sorted(p for p in listing if VOICE_PACKAGES.match(p) and not LEFT_OUT.search(p))
    available = [p for p in BASE_PACKAGES if p in listing] + voices
    subprocess.run(["apt-get", "install", "-y", "-qq", *available], check=True, env=apt,
                   stdout=subprocess.DEVNULL)


def main() -> None:
    if os.geteuid() == 0 and os.path.isfile("/usr/bin/apt-get"):
        try:
            install()
        except (OSError, ValueError, subprocess.CalledProcessError) as error:
            print(f"warning: installing the voices failed ({error}); using what is installed",
                  file=sys.stderr)
    else:
        print("warning: not root (or no apt): voices are not installed, only listed",
              file=sys.stderr)
    voices = find_voices()
    counts = Counter(v.engine for v in voices)
    print(f"{len(voices)} voices: " + ", ".join(f"{e} {n}" for e, n in sorted(counts.items())))


if __name__ == "__main__":
    main()
