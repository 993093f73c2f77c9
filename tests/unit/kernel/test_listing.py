from mlops_lab.kernel.listing import REQUIRED_FIELDS, input_field_types


def test_input_field_types_require_the_challenge_fields_except_the_borough_name():
    fields = input_field_types()
    required = {name for name, (_, needed) in fields.items() if needed}
    assert required == set(REQUIRED_FIELDS) - {"borough"}
    assert fields["neighbourhood"] == ("string", False)
    assert fields["id"] == ("any", False)
    assert fields["accommodates"] == ("double", True)
