import json
import pprint

with open('/dev/input') as fp:
    data = json.load(fp)
print(pprint.pformat(data))
