#!/usr/bin/env python3
"""Snakebin in a real browser: headless Chromium driven by Playwright.

Usage: snakebin_browser.py PAGE_URL OUT_DIR

Opens the Snakebin page (http://127.0.0.1:PORT/api/<account>/snakebin-api),
types a script into the CodeMirror editor, saves it, opens the saved URL
and finds the script in the editor, runs it and reads its output, searches
for a word of it and finds its URL. Each step leaves a screenshot in
OUT_DIR (01-open.png ...), and readme.png is a small one of the page at
the end. Every request to a host other than 127.0.0.1 is blocked, and
any such request, a JavaScript error or a failed check makes it exit 1:
the page needs no internet.

The browser is Debian's chromium ($ZC_CHROMIUM, default /usr/bin/chromium):
Playwright's own browser download is not used.
"""

import os
import sys
import time
import urllib.parse

from playwright.sync_api import expect, sync_playwright

TIMEOUT_MS = 60_000


def main():
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    page_url, out_dir = sys.argv[1], sys.argv[2]
    os.makedirs(out_dir, exist_ok=True)
    chromium = os.environ.get('ZC_CHROMIUM', '/usr/bin/chromium')
    # A word only this run's script holds, for the search.
    word = 'browserword%d' % (time.time_ns() % 10**9)
    lines = [
        'word = "%s"' % word,
        'print("hello from the browser")',
        'print(6 * 7)',
    ]
    script = '\n'.join(lines)
    outside = []      # requests to other hosts (all blocked)
    js_errors = []    # uncaught exceptions on the page

    def shot(page, name):
        path = os.path.join(out_dir, name)
        page.screenshot(path=path, full_page=True)
        print('screenshot %s' % path, flush=True)

    def only_local(route):
        host = urllib.parse.urlsplit(route.request.url).hostname
        if host == '127.0.0.1':
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    expect.set_options(timeout=TIMEOUT_MS)
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium, headless=True)
        try:
            context = browser.new_context(viewport={'width': 1000, 'height': 760})
            context.set_default_timeout(TIMEOUT_MS)
            context.route('**/*', only_local)
            page = context.new_page()
            page.on('pageerror', lambda e: js_errors.append(str(e)))

            # 1. The page, with an empty editor.
            page.goto(page_url)
            editor = page.locator('.CodeMirror')
            expect(editor).to_be_visible()
            empty = page.evaluate('window.snakebinEditor.getValue()')
            check(empty == '', 'the new page\'s editor holds %r' % empty)
            shot(page, '01-open.png')

            # 2. A script typed into the editor, line by line.
            page.locator('.CodeMirror-lines').click()
            for i, line in enumerate(lines):
                if i:
                    page.keyboard.press('Enter')
                page.keyboard.type(line)
            # CodeMirror reads its hidden textarea when it polls: wait for it.
            try:
                page.wait_for_function('s => window.snakebinEditor.getValue() === s',
                                       arg=script, timeout=10_000)
            except Exception:
                typed = page.evaluate('window.snakebinEditor.getValue()')
                check(False, 'the editor holds %r, not %r' % (typed, script))
            shot(page, '02-typed.png')

            # 3. Save: a link to the script's URL.
            page.click('#save')
            link = page.locator('#save-url')
            expect(link).to_be_visible()
            saved = link.get_attribute('href')
            check(saved.startswith(page_url + '/'),
                  'saved to %r, not under %s/' % (saved, page_url))
            shot(page, '03-saved.png')

            # 4. The saved URL, followed: the page with the script in it.
            link.click()
            page.wait_for_url(saved)
            expect(page.locator('.CodeMirror')).to_be_visible()
            shown = page.evaluate('window.snakebinEditor.getValue()')
            check(shown.rstrip('\n') == script,
                  'the saved page shows %r, not %r' % (shown, script))
            page.reload()
            shown = page.evaluate('window.snakebinEditor.getValue()')
            check(shown.rstrip('\n') == script, 'after a reload the page shows %r' % shown)
            shot(page, '04-reopened.png')

            # 5. Run: the output, and the run's status.
            page.click('#run')
            output = page.locator('#run-output')
            expect(output).to_have_text('hello from the browser\n42\n')
            expect(page.locator('#run-status')).to_contain_text('X-Nexe-Retcode: 0')
            shot(page, '05-run.png')

            # 6. Search for the word: the saved script's URL, only it.
            page.fill('#search-text', word)
            page.click('#search')
            hits = page.locator('#search-results a.hit')
            expect(hits).to_have_count(1)
            href = hits.first.get_attribute('href')
            check(href == saved, 'the search found %r, not %r' % (href, saved))
            shot(page, '06-search.png')

            # A small one of the whole page, for the README.
            page.set_viewport_size({'width': 720, 'height': 560})
            page.screenshot(path=os.path.join(out_dir, 'readme.png'))
        except Exception as e:
            check(False, '%s\n(requests to other hosts, blocked: %s)' % (e, outside))
        finally:
            browser.close()

    check(not outside, 'the page asked for other hosts: %s' % outside)
    check(not js_errors, 'JavaScript errors: %s' % js_errors)
    print('ok: saved %s, ran it, found it' % saved, flush=True)


def check(cond, msg):
    if not cond:
        sys.stderr.write('snakebin_browser.py: FAILED: %s\n' % msg)
        sys.exit(1)


if __name__ == '__main__':
    main()
