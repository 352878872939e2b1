# The two set-up commands of the README: `make demo` and `make test`.
# Both create .venv/ on first use and reuse it afterwards (it is rebuilt when setup.cfg changes).

SHELL := /bin/bash
.SHELLFLAGS := -eo pipefail -c
VENV := .venv
PYTHON := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed

DEBIAN := $(VENV)/.debian-packages
VOICES := $(VENV)/.voices
DEMO := exps/demo
REAL := $(DEMO)/real_speech
TIMES := $(DEMO)/stage_times.tsv
# Run options for both training stages, e.g. DEMO_TRAINING=--precision=fp32 (as on a CPU
# without bf16).
DEMO_TRAINING ?=

.PHONY: demo real-speech test install

# Runs stage $(1), the command $(2), and appends its name and wall-clock seconds to $(TIMES),
# which the summary prints.
timed = start=$$(date +%s%N); $(2); \
	printf '%s\t%d\n' $(1) $$(( ($$(date +%s%N) - start) / 1000000000 )) >> $(TIMES)

# The end-to-end demo: set-up (the Python stack and the voices, side by side), real speech
# (SpeechBrain's VoxCeleb model on real recordings, the summary's first block), corpus, training
# (first stage, without a back-end), large-margin fine-tuning (the final pretrained folder
# with its back-end), verification, plots, identification, diarization, summary (with each
# stage's time).
demo:
	mkdir -p $(DEMO) && printf 'stage\tseconds\n' > $(TIMES)
	$(call timed,set-up,$(MAKE) --no-print-directory -j2 $(INSTALLED) $(VOICES))
	$(call timed,real-speech,$(MAKE) --no-print-directory real-speech)
	$(call timed,corpus,$(PYTHON) recipes/prepare_data.py hparams/demo.yaml --demo_folder=$(DEMO) >/dev/null)
	$(call timed,training,$(PYTHON) recipes/train_speaker_embeddings.py hparams/demo.yaml --demo_folder=$(DEMO) --backend=null --check_precisions_at_export=False $(DEMO_TRAINING))
	$(call timed,fine-tuning,$(PYTHON) recipes/train_speaker_embeddings.py hparams/demo_lm.yaml --demo_folder=$(DEMO) $(DEMO_TRAINING))
	$(call timed,verification,$(PYTHON) recipes/speaker_verification.py hparams/demo_verify.yaml --experiment=$(DEMO))
	$(call timed,plots,$(PYTHON) recipes/visualize.py hparams/demo_visualize.yaml --experiment=$(DEMO))
	$(call timed,identification,$(PYTHON) recipes/identification.py hparams/demo_identify.yaml --experiment=$(DEMO))
	$(call timed,diarization,$(PYTHON) recipes/diarize.py hparams/demo_diarize.yaml --experiment=$(DEMO))
	$(PYTHON) recipes/demo_summary.py hparams/demo_lm.yaml --demo_folder=$(DEMO) --publish_to=README.md

# The council's recordings prepared; SpeechBrain's published VoxCeleb model imported from its
# wheel (every file checked against its SHA-256) with its precision check on the development
# members; its back-end fitted on them (a sidecar: the imported folder stays as imported), then
# verification, identification and diarization of the test members and pyannote.audio's sample.
real-speech: $(INSTALLED)
	$(PYTHON) recipes/prepare_data.py hparams/demo_real_speech.yaml --output_folder=$(REAL)/data >/dev/null
	$(PYTHON) recipes/import_speechbrain.py hparams/import_speechbrain.yaml --output_folder=$(REAL)/pretrained --use_hub=False --check_trials=$(REAL)/data/sets/development/valid_trials.txt --check_csv=$(REAL)/data/sets/development/valid.csv >/dev/null
	$(PYTHON) recipes/export_backend.py hparams/real_speech_backend.yaml --experiment=$(REAL) --development=$(REAL)/data/sets/development >/dev/null
	$(PYTHON) recipes/speaker_verification.py hparams/verify_real_speech.yaml --experiment=$(REAL) --sets_folder=$(REAL)/data/sets >/dev/null
	$(PYTHON) recipes/identification.py hparams/identify_real_speech.yaml --experiment=$(REAL) --data_folder=$(REAL)/data/sets/council >/dev/null
	$(PYTHON) recipes/diarize.py hparams/demo_real_diarize.yaml --experiment=$(REAL) >/dev/null
	$(PYTHON) recipes/diarize.py hparams/demo_real_diarize.yaml --experiment=$(REAL) --recordings=$(REAL)/data/pyannote_sample/recordings.csv --output_folder=$(REAL)/diarization/pyannote_sample --sidecar=$(REAL)/sidecars/diarization_pyannote_sample >/dev/null

test: $(INSTALLED) $(DEBIAN)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest

install: $(INSTALLED)

$(INSTALLED): setup.cfg pyproject.toml
	test -x $(PYTHON) || python3 -m venv $(VENV)
	$(PYTHON) -m pip install --quiet -e '.[dev]' 2>&1 | { grep -v 'is ignored: it is neither' || true; }
	touch $(INSTALLED)

# Debian packages from debian-packages.txt: installed when root, otherwise only checked.
$(DEBIAN): debian-packages.txt
	@packages="$$(grep -v '^#' debian-packages.txt | xargs)"; \
	if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
		apt-get update -qq && DEBIAN_FRONTEND=noninteractive DEBCONF_NOWARNINGS=yes apt-get install -y -qq $$packages >/dev/null; \
	else \
		for p in $$packages; do dpkg -s $$p >/dev/null 2>&1 || echo "warning: Debian package $$p is missing (run as root to install it)"; done; \
	fi
	mkdir -p $(VENV) && touch $(DEBIAN)

# Every speech synthesis voice Debian packages (contrib and non-free too): installed when root,
# otherwise the demo uses the voices already there (with a warning if that is espeak-ng only).
# Standard library only (the system's python3), so it runs while .venv/ is being installed.
$(VOICES): data_prep/demo/install_voices.py $(DEBIAN)
	python3 -m data_prep.demo.install_voices
	if [ "$$(id -u)" = 0 ]; then touch $(VOICES); fi

