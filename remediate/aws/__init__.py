"""What remediate knows about AWS's APIs, as data: no boto3 import here."""
