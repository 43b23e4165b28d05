"""A toy intent-classification set shared by the finetune tests: ``tests/unit`` trains a tiny random
Llama on it, ``tests/models`` the real SmolLM2. Two short tickets per intent, in ``data.INTENTS`` order."""

from tradeoffs.data import INTENTS

LABELS = list(INTENTS)

TRAIN = [("i was charged twice for my invoice", "billing"), ("card payment failed again", "billing"),
         ("want my money back please", "refund"), ("refund me for the late parcel", "refund"),
         ("where is my parcel", "delivery"), ("parcel said out for delivery yesterday", "delivery"),
         ("cant log in", "account_access"), ("password reset link broken", "account_access"),
         ("app crashes when i open it", "bug_report"), ("the app crashes again", "bug_report"),
         ("close my subscription", "cancellation"), ("cancellation please", "cancellation"),
         ("how do i export my data", "product_question"), ("question on the product", "product_question"),
         ("staff rude rang three times no reply", "complaint"), ("complaint about the team", "complaint")]
