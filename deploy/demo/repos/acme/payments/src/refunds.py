def refund(payment, amount):
    """Refunds `amount` of `payment`."""
    if amount > payment.amount:
        raise ValueError("refund exceeds the payment")
    return payment.gateway.refund(payment.id, amount)
