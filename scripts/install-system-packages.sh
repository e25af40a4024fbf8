#!/usr/bin/env bash
# Debian packages the test suite calls as real tools: Chromium (browser tests), dcmtk (storescu, echoscu,
# dcmdump), plastimatch (contour oracle) and dicom3tools (dciodvfy). Installs only what is missing.
set -euo pipefail
need=()
command -v chromium >/dev/null || need+=(chromium)
command -v storescu >/dev/null || need+=(dcmtk)
command -v plastimatch >/dev/null || need+=(plastimatch)
command -v dciodvfy >/dev/null || need+=(dicom3tools)
if [ ${#need[@]} -gt 0 ]; then
    echo "Installing ${need[*]} from Debian…"
    SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${need[@]}" >/dev/null
fi
