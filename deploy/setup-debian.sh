#!/bin/sh
# Installs the Debian packages the gateway needs that this machine lacks; nothing when none is
# missing. Called by the README's two commands and by .ci/run.
#
#   sh deploy/setup-debian.sh runtime   python3-venv (to make the virtual environment)
#   sh deploy/setup-debian.sh test      the same, and what the tests drive: zbarimg (a real
#                                       barcode reader), rsvg-convert (SVG to PNG for it),
#                                       poppler (to read the PDFs back, with its Japanese CMaps),
#                                       Chromium (the payment page in a real browser), a
#                                       Japanese font for it (the console's screenshots) and
#                                       promtool (the alert rules' checks and unit tests)
#
# As root it runs apt-get; otherwise through sudo when there is one; otherwise it prints the
# apt-get command to run and exits 1.
set -eu
mode=${1:-runtime}
case "$mode" in runtime|test) ;; *) echo "usage: $0 runtime|test" >&2; exit 2 ;; esac

need=""
python3 -c 'import ensurepip, venv' 2>/dev/null || need="$need python3-venv"
if [ "$mode" = test ]; then
  command -v zbarimg >/dev/null 2>&1 || need="$need zbar-tools"
  command -v rsvg-convert >/dev/null 2>&1 || need="$need librsvg2-bin"
  command -v pdftotext >/dev/null 2>&1 || need="$need poppler-utils"
  dpkg -s poppler-data >/dev/null 2>&1 || need="$need poppler-data"
  command -v chromium >/dev/null 2>&1 || need="$need chromium"
  fc-list :lang=ja 2>/dev/null | grep -q . || need="$need fonts-ipafont-gothic"
  command -v promtool >/dev/null 2>&1 || need="$need prometheus"
fi
[ -z "$need" ] && exit 0

if [ "$(id -u)" = 0 ]; then
  as_root=""
elif command -v sudo >/dev/null 2>&1; then
  as_root="sudo"
else
  echo "deploy/setup-debian.sh: as root, run: apt-get install -y --no-install-recommends$need" >&2
  exit 1
fi
echo "deploy/setup-debian.sh: installing$need"
export DEBIAN_FRONTEND=noninteractive
$as_root apt-get update -q </dev/null
# shellcheck disable=SC2086 # one word per package
$as_root apt-get install -y -q --no-install-recommends $need </dev/null
