import csv

with open('/dev/input', newline='') as fp:
    reader = csv.reader(fp)
    for id, name, email, balance in reader:
        print('%(name)s: %(balance)s' % dict(name=name, balance=balance))
