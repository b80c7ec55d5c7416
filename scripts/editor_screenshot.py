"""Draw docs/editors/neovim_hover.png: `resdsl lsp` in a real Neovim, with a diagnostic and a
hover on screen.

    .venv/bin/pip install pyte pillow     # docs tooling only, not a dependency of resdsl
    .venv/bin/python scripts/editor_screenshot.py

It runs `nvim --clean` (drawn with Debian 12's 0.7.2: `apt-get install neovim`) in a
pseudo-terminal of 128x26 cells emulated by pyte, with the language server started from this
Python as `python -m resdsl lsp`. The generated init.lua opens a small spec, waits for the
first check, types a typo (a did-you-mean diagnostic appears as virtual text and a sign),
puts the cursor on a conv statement and asks for a hover; then the script paints pyte's
screen (characters, colours, bold, the cursor) into a PNG with Pillow and DejaVu Sans Mono.
Nothing in it is random, so a re-run redraws the same picture unless the server's answers
changed.
"""

from __future__ import annotations

import argparse
import contextlib
import fcntl
import os
import select
import shutil
import signal
import struct
import subprocess
import sys
import tempfile
import termios
import time
from pathlib import Path

import pyte
from PIL import Image, ImageDraw, ImageFont

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "editors" / "neovim_hover.png"
COLUMNS, LINES = 128, 26
FONT_DIRS = ["/usr/share/fonts/truetype/dejavu", "/usr/share/fonts/TTF",
             "/Library/Fonts", str(Path.home() / ".fonts")]

# A spec with its block written out, so that it needs no library beside it.
SPEC = """\
# ResNet-20 for CIFAR-10 (He et al. 2015, section 4.2), its block written out.
block basic(planes, stride = 1) {
    skip {
        conv1: conv(planes, 3, stride = stride); bn1: bn; relu
        conv2: conv(planes, 3); bn2: bn
    } shortcut zeropad(planes, stride = stride) if stride != 1 or in.c != planes
    relu
}

network resnet20(classes = 10) {
    input [3, 32, 32]
    conv1: conv(16, 3); bn1: bn; relu
    layer1: repeat 3 { basic(16) }
    layer2: repeat 3 as i { basic(32, stride = 2 if i == 0 else 1) }
    layer3: repeat 3 as i { basic(64, stride = 2 if i == 0 else 1) }
    avgpool: global_avgpool; flatten
    fc: linear(classes)
}
"""
# The typo typed once the spec has built (hover shows shapes from the last build): on line 7,
# relu becomes rleu. The statement hovered: (line, column), 1-based, of the network's first conv.
TYPO = (7, "relu", "rleu")
HOVER_AT = (12, 5)

# Neovim 0.7's API (vim.lsp.start_client; vim.lsp.start is 0.8+). A timer walks the steps:
# first check published -> type the typo -> its diagnostic published -> hover -> float open.
INIT_LUA = """\
vim.o.termguicolors = true
vim.cmd("colorscheme desert")
vim.o.number = true
vim.o.signcolumn = "yes"
vim.o.showmode = false
vim.o.swapfile = false
vim.o.shortmess = vim.o.shortmess .. "IF"
vim.cmd("highlight NormalFloat guibg=#262626")
vim.cmd("highlight FloatBorder guibg=#262626 guifg=#a0a0a0")
-- A few highlights for the screenshot, set on the file's buffer; the real grammar is
-- editors/vscode's.
local syntax = [[
syntax keyword resKeyword block network skip shortcut repeat as if else input use def return
syntax match resComment "#.*$"
syntax match resNumber "\\<\\d\\+\\>"
highlight link resKeyword Statement
highlight link resComment Comment
highlight link resNumber Number
]]
-- Diagnostics as virtual text with their codes (Neovim 0.11 turns virtual text off).
vim.diagnostic.config({ signs = true, virtual_text = {
  format = function(d) return (d.code and d.code .. " " or "") .. d.message end,
} })
vim.lsp.handlers["textDocument/hover"] =
  vim.lsp.with(vim.lsp.handlers.hover, { border = "rounded" })
local published = 0
local publish = vim.lsp.handlers["textDocument/publishDiagnostics"]
vim.lsp.handlers["textDocument/publishDiagnostics"] = function(err, result, ctx, config)
  published = published + 1
  publish(err, result, ctx, config)
end

local done_file, typo_line, typo_from, typo_to, line, col = %(args)s
local buf

local function floats()
  for _, w in ipairs(vim.api.nvim_list_wins()) do
    if vim.api.nvim_win_get_config(w).relative ~= "" then return true end
  end
  return false
end

local step, seen = 1, 0
local steps = {
  function() return published > 0 end,
  function()
    local s, e = vim.api.nvim_buf_get_lines(buf, typo_line - 1, typo_line, true)[1]
      :find(typo_from, 1, true)
    vim.api.nvim_buf_set_text(buf, typo_line - 1, s - 1, typo_line - 1, e, { typo_to })
    seen = published
    return true
  end,
  function() return published > seen and #vim.diagnostic.get(buf) > 0 end,
  function()
    vim.api.nvim_win_set_cursor(0, { line, col - 1 })
    vim.lsp.buf.hover()
    return true
  end,
  floats,
}
-- The file's buffer is loaded after init.lua runs: attach the server to it at VimEnter.
vim.api.nvim_create_autocmd("VimEnter", { callback = function()
  buf = vim.api.nvim_get_current_buf()
  vim.cmd(syntax)
  local client = vim.lsp.start_client({
    name = "resdsl", cmd = %(cmd)s, root_dir = vim.fn.getcwd(),
  })
  vim.lsp.buf_attach_client(buf, client)
  local timer = vim.loop.new_timer()
  timer:start(100, 100, vim.schedule_wrap(function()
    if step <= #steps and steps[step]() then step = step + 1 end
    if step > #steps then
      timer:stop()
      vim.cmd("redraw")
      vim.fn.writefile({ "done" }, done_file)
    end
  end))
end })
"""


def lua_string(s: str) -> str:
    return '"' + s.replace("\\", "\\\\").replace('"', '\\"') + '"'


def run_neovim(nvim: str, folder: Path, timeout: float) -> pyte.Screen:
    """Run Neovim on folder/resnet20.res until the hover is open; the screen it drew."""
    (folder / "resnet20.res").write_text(SPEC)
    done = folder / "done"
    cmd = [sys.executable, "-m", "resdsl", "lsp"]
    args = ", ".join([lua_string(str(done)), str(TYPO[0]), lua_string(TYPO[1]),
                      lua_string(TYPO[2]), str(HOVER_AT[0]), str(HOVER_AT[1])])
    init = folder / "init.lua"
    init.write_text(INIT_LUA % {"args": args,
                                "cmd": "{" + ", ".join(lua_string(c) for c in cmd) + "}"})
    env = {**os.environ, "TERM": "xterm-256color", "COLORTERM": "truecolor",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", LINES, COLUMNS, 0, 0))
    proc = subprocess.Popen([nvim, "--clean", "-u", str(init), "resnet20.res"], cwd=folder,
                            env=env, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True)
    os.close(slave)
    screen = pyte.Screen(COLUMNS, LINES)
    stream = pyte.ByteStream(screen)
    deadline = time.monotonic() + timeout
    settle: float | None = None  # when the hover is open: read on until the screen is quiet
    try:
        while True:
            now = time.monotonic()
            if now > deadline:
                raise SystemExit(f"editor_screenshot: Neovim did not show the hover within "
                                 f"{timeout:.0f} s; the screen was:\n"
                                 + "\n".join(screen.display))
            ready, _, _ = select.select([master], [], [], 0.3)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # Neovim exited
                    raise SystemExit("editor_screenshot: Neovim exited early:\n"
                                     + "\n".join(screen.display)) from None
                stream.feed(data)
                if settle is not None:
                    settle = now
            elif settle is not None and now - settle > 1.0:
                return screen
            if settle is None and done.exists():
                settle = now
    finally:
        # Neovim leads its own process group (start_new_session): end it and its children;
        # the server also exits when its standard input closes.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        os.close(master)


# The 16 ANSI colours (xterm's), for colours pyte reports by name.
ANSI = {"black": "000000", "red": "cd0000", "green": "00cd00", "brown": "cdcd00",
        "blue": "0000ee", "magenta": "cd00cd", "cyan": "00cdcd", "white": "e5e5e5",
        "brightblack": "7f7f7f", "brightred": "ff0000", "brightgreen": "00ff00",
        "brightbrown": "ffff00", "brightblue": "5c5cff", "brightmagenta": "ff00ff",
        "brightcyan": "00ffff", "brightwhite": "ffffff"}
DEFAULT_FG, DEFAULT_BG = "ffffff", "333333"  # desert's Normal


def rgb(colour: str, default: str) -> tuple[int, int, int]:
    h = default if colour == "default" else ANSI.get(colour, colour)
    return int(h[0:2], 16), int(h[2:4], 16), int(h[4:6], 16)


def font(bold: bool, size: int) -> ImageFont.FreeTypeFont:
    name = "DejaVuSansMono-Bold.ttf" if bold else "DejaVuSansMono.ttf"
    for d in FONT_DIRS:
        if (Path(d) / name).exists():
            return ImageFont.truetype(str(Path(d) / name), size)
    raise SystemExit(f"editor_screenshot: {name} not found in {', '.join(FONT_DIRS)}")


def render(screen: pyte.Screen, size: int = 15) -> Image.Image:
    """Paint the screen's cells: a background box, then the character in its colour."""
    regular, bold = font(False, size), font(True, size)
    width = round(regular.getlength("M"))
    ascent, descent = regular.getmetrics()
    height = ascent + descent + 2
    image = Image.new("RGB", (COLUMNS * width, LINES * height), rgb("default", DEFAULT_BG))
    draw = ImageDraw.Draw(image)
    for y in range(LINES):
        row = screen.buffer[y]
        for x in range(COLUMNS):
            cell = row[x]
            fg, bg = rgb(cell.fg, DEFAULT_FG), rgb(cell.bg, DEFAULT_BG)
            if cell.reverse != (not screen.cursor.hidden and (x, y) == (screen.cursor.x,
                                                                        screen.cursor.y)):
                fg, bg = bg, fg
            box = (x * width, y * height, (x + 1) * width, (y + 1) * height)
            draw.rectangle(box, fill=bg)
            if cell.data.strip():
                draw.text((x * width, y * height + 1), cell.data, fill=fg,
                          font=bold if cell.bold else regular)
    return image


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-o", "--output", type=Path, default=OUT)
    parser.add_argument("--nvim", default="nvim", help="the Neovim executable")
    parser.add_argument("--timeout", type=float, default=60.0, help="seconds, at most")
    args = parser.parse_args()
    nvim = shutil.which(args.nvim)
    if nvim is None:
        raise SystemExit(f"editor_screenshot: {args.nvim} not found: install Neovim 0.7 or "
                         "later (e.g. `apt-get install neovim`) or pass --nvim PATH")
    with tempfile.TemporaryDirectory() as tmp:
        screen = run_neovim(nvim, Path(tmp), args.timeout)
    args.output.parent.mkdir(parents=True, exist_ok=True)
    render(screen).save(args.output, optimize=True)
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
