"""The prediction log: the on-disk spool, its shipper, the table's schema and its migrations.

No Flask: the shipper is a process of its own on each web host, and the migrations run from the boot script.
"""
