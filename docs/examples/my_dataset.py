"""A hospital's dataset with no loader to write: a folder of images plus labels.csv.

    <data dir>/ward_cxr/labels.csv       image,finding,patient
    <data dir>/ward_cxr/images/0001.png  0001.png,effusion,P0007
"""

from radbench_core.data.datasets.generic import csv_dataset

WARD_CXR = csv_dataset("ward_cxr", "Ward chest X-rays", folder="ward_cxr", images_dir="images",
                       label_column="finding", classes=("normal", "effusion", "pneumothorax"),
                       patient_column="patient")
