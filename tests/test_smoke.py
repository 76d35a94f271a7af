def test_units_list_answers_in_chinese_by_default(api, make_unit):
    make_unit()
    resp = api("Staff").get("/api/v1/unit/?q=(page:0,page_size:5)")
    assert resp.status_code == 200
    assert resp.json["label_columns"]["code"] == "房号"
    resp = api("Staff").get("/api/v1/unit/?q=(page:0,page_size:5)&_l_=en")
    assert resp.json["label_columns"]["code"] == "Unit code"
