"""The map step of a search: one node per stored script (the wildcard
swift://~/snakebin-store/*), each next to its script on /dev/input. A
script that contains SNAKEBIN_SEARCH is sent to the reducer as its URL."""

import os

import snakebin

with open('/dev/input', 'rb') as fp:
    contents = fp.read()

search_term = os.environ.get('SNAKEBIN_SEARCH', '')
hit = ''
if search_term and search_term.encode('utf-8') in contents:
    # LOCAL_PATH_INFO is /<account>/snakebin-store/<name>.
    document_name = os.environ.get('LOCAL_PATH_INFO', '').split('/')[-1]
    account = os.environ.get('PATH_INFO', '').strip('/')
    hit = snakebin.doc_url(account, document_name) + '\n'

# Always written, empty when there is no hit: the reducer reads to the end.
with open('/dev/out/search-reducer', 'a') as fp:
    fp.write(hit)
