"""What runs on every web host, EC2 or local: the nginx site renderer."""
