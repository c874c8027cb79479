//! The category: given, inferred from Chinese text by keywords, or the fallback.

mod common;

use common::*;
use gridline_model::CategorySource;

fn infer(text: &str) -> (String, CategorySource, Vec<String>) {
    let r = route(jidong(), &intake(text, None, grid("JDZ-NH-01")), "10:00");
    (r.decision.category, r.decision.category_source, r.decision.keywords)
}

/// Each text's category and the keywords it was inferred from: inferred
/// when there are keywords, the fallback when there are none.
fn check_inferred(cases: &[(&str, &str, &[&str])]) {
    for &(text, want, words) in cases {
        let (cat, source, kws) = infer(text);
        let how = if words.is_empty() { CategorySource::Fallback } else { CategorySource::Inferred };
        assert_eq!((cat.as_str(), source), (want, how), "{text}: {kws:?}");
        assert_eq!(kws, words.iter().map(|s| s.to_string()).collect::<Vec<_>>(), "{text}");
    }
}

#[test]
fn real_sentences_infer_their_category_and_say_which_keywords() {
    let cases: [(&str, &str, &[&str]); 10] = [
        ("我家楼下水管爆了，一直在漏水", "water", &["水管", "漏水"]),
        ("小区路灯坏了好几天", "street_lighting", &["路灯"]),
        ("邻居装修噪音太大", "neighbour_dispute", &["邻居", "噪音"]),
        // 暖气 inside 暖气片 does not count again.
        ("家里暖气片不热，屋里才十二度", "heating", &["暖气片"]),
        ("楼道里的垃圾好几天没人清运了", "sanitation", &["垃圾", "清运"]),
        ("超市卖过期食品", "market_food_safety", &["过期", "食品"]),
        ("单位拖欠工资三个月了", "social_security", &["拖欠工资"]),
        ("昨晚楼下有人打架", "public_order", &["打架"]),
        ("我们这片从早上就停电了", "power", &["停电"]),
        ("厨房下水道堵塞，污水往上返", "drainage", &["下水道", "污水"]),
    ];
    check_inferred(&cases);
    let r = route(jidong(), &intake("我家楼下水管爆了，一直在漏水", None, grid("JDZ-NH-01")), "10:00");
    assert!(r.decision.steps[1].contains("inferred from the keywords 水管, 漏水"), "{:?}", r.decision.steps);
}

#[test]
fn most_matches_then_longest_keyword_then_lowest_index() {
    // 水管 (water) and 路灯 (street lighting): one each, both two characters:
    // water comes first in the registry.
    assert_eq!(infer("路灯旁边的水管").0, "water");
    // The explanation says it was a toss-up, and how to settle it.
    let r = route(jidong(), &intake("路灯旁边的水管", None, grid("JDZ-NH-01")), "10:00");
    assert!(
        r.decision.steps[1]
            .contains("(as many keywords for street_lighting (路灯照明): the category listed first wins"),
        "{:?}",
        r.decision.steps
    );
    let r = route(jidong(), &intake("水管边上的路灯不亮", None, grid("JDZ-NH-01")), "10:00");
    assert!(!r.decision.steps[1].contains("as many keywords"), "no tie: {:?}", r.decision.steps);
    // Two lighting keywords against one water keyword.
    assert_eq!(infer("水管边上的路灯不亮").0, "street_lighting");
    // One each, the longer keyword wins: 拖欠工资 (4) over 噪音 (2).
    assert_eq!(infer("噪音，拖欠工资").0, "social_security");
    // Repeating a keyword does not count twice.
    assert_eq!(infer("漏水漏水漏水，路灯不亮").0, "street_lighting");
}

#[test]
fn unknown_text_falls_back_to_the_general_category() {
    for text in ["你好，我想反映个情况", "", "hello"] {
        let (cat, source, kws) = infer(text);
        assert_eq!((cat.as_str(), source, kws.len()), ("general", CategorySource::Fallback, 0), "{text}");
    }
}

#[test]
fn a_given_category_wins_over_the_text_and_may_be_its_chinese_name() {
    let r = jidong();
    let given = route(r, &intake("水管漏水", Some("heating"), grid("JDZ-NH-01")), "10:00");
    assert_eq!(
        (given.decision.category.as_str(), given.decision.category_source),
        ("heating", CategorySource::Given)
    );
    assert!(given.decision.keywords.is_empty());
    let by_name = route(r, &intake("", Some("路灯照明"), grid("JDZ-NH-01")), "10:00");
    assert_eq!(by_name.decision.category, "street_lighting");
    // Unknown: routing still works (validate is where the operator hears about it).
    let unknown = route(r, &intake("水管漏水", Some("煤气"), grid("JDZ-NH-01")), "10:00");
    assert_eq!(
        (unknown.decision.category.as_str(), unknown.decision.category_source),
        ("water", CategorySource::Inferred)
    );
    assert!(unknown.decision.steps[1].contains("`煤气` is not in the registry"));
}

/// Phrasings a review found sent to the wrong department: a keyword inside
/// a longer word (卫生 in 卫生院, 垃圾 in 垃圾短信, 不热 in 不热情), or a tie
/// decided by the order of the categories (暖气 against 漏水). 交通堵塞 is
/// traffic's, not a drain's.
#[test]
fn a_keyword_inside_a_longer_one_does_not_count() {
    let cases: [(&str, &str, &[&str]); 13] = [
        ("社区工作人员态度不热情", "general", &[]),
        ("热水器不热", "general", &[]),
        ("交通堵塞", "traffic", &["交通堵塞"]),
        ("道路堵塞", "roads", &["道路"]),
        ("乡卫生院不给孩子打疫苗", "public_health", &["卫生院", "疫苗"]),
        ("卫生院医疗事故", "public_health", &["卫生院", "医疗"]),
        ("接到垃圾短信冒充客服诈骗", "public_order", &["垃圾短信", "诈骗"]),
        ("暖气管道漏水", "heating", &["暖气管"]),
        ("暖气漏水了", "heating", &["暖气漏水"]),
        ("垃圾桶破损", "sanitation", &["垃圾桶"]),
        ("小区门口人行道上堆满垃圾", "sanitation", &["堆满垃圾"]),
        ("路面积雪没人清", "sanitation", &["路面积雪"]),
        ("马桶堵了，厕所返水", "drainage", &["马桶堵", "返水"]),
    ];
    check_inferred(&cases);
    // Still a water pipe: 下水管 alone is not a keyword, since 楼下水管
    // reads 楼下 + 水管; 下水管堵 is.
    assert_eq!(infer("我家楼下水管爆了").0, "water");
    assert_eq!(infer("厨房下水管堵塞").0, "drainage");
}

/// Complaints a county hotline hears every day that once fell to the
/// general category (no keyword) or to the wrong department: gas, wages,
/// the building's lights, lifts, the city's order, traffic, fire safety,
/// pollution. Each goes to the department that acts on it.
#[test]
fn everyday_complaints_reach_their_department() {
    let cases: [(&str, &str, &[&str]); 24] = [
        ("楼道里有燃气泄漏的味道", "gas", &["燃气"]),
        ("天然气管道漏气", "gas", &["天然气", "漏气"]),
        ("工资被拖欠", "social_security", &["工资"]),
        ("农民工讨薪", "social_security", &["讨薪"]),
        ("广场舞噪声扰民", "neighbour_dispute", &["噪声", "扰民"]),
        // The building site's noise and a restaurant's fumes are the city's.
        ("工地夜间施工噪声太大", "city_management", &["施工噪声"]),
        ("烧烤店油烟扰民", "city_management", &["油烟扰民"]),
        // Longer than street lighting's 不亮.
        ("楼道灯不亮了", "housing", &["楼道灯"]),
        ("红绿灯不亮", "traffic", &["红绿灯"]),
        ("小区物业乱收费", "housing", &["物业"]),
        ("房顶漏雨", "housing", &["漏雨"]),
        ("小区电梯困人", "elevator", &["电梯", "困人"]),
        ("私搭乱建占道经营", "city_management", &["私搭乱建", "占道经营"]),
        ("车辆乱停乱放", "traffic", &["乱停"]),
        ("出租车拒载", "traffic", &["出租车", "拒载"]),
        ("消防通道被私家车停车占用", "fire_safety", &["消防通道"]),
        ("在楼道里给电动车充电很危险", "fire_safety", &["电动车充电"]),
        ("高空抛物", "public_order", &["高空抛物"]),
        ("流浪狗咬人", "public_order", &["流浪狗"]),
        ("药店卖假药", "market_food_safety", &["药店", "假药"]),
        ("商家短斤少两", "market_food_safety", &["短斤少两"]),
        ("秸秆焚烧", "environment", &["秸秆", "焚烧"]),
        // 烧垃圾 is a fire, not a bin: sanitation's 垃圾 inside it does not count.
        ("有人在小区里烧垃圾", "environment", &["烧垃圾"]),
        ("家里没有热水", "general", &[]),
    ];
    check_inferred(&cases);
    // Gas and fire are listed first: a gas smell beside a water pipe is a
    // gas case, a fire at a neighbour's a fire.
    assert_eq!(infer("水管旁边有煤气味").0, "gas");
    assert_eq!(infer("邻居家着火了，赶紧来人").0, "fire_safety");
    // A power cut that stops the lift is the power company's: 停电 and 电梯
    // tie, and power is listed before the lift.
    assert_eq!(infer("整栋楼停电了，电梯也停了").0, "power");
}

/// Phrasings a review of 178 everyday calls found misrouted: a short
/// keyword inside a longer word (卫生 in 卫生间, 医疗 in 医疗保险, 纠纷 in
/// 劳动纠纷, 污水 in 排污水, 破损 and 过期 in what a shop or a card is), or
/// no keyword at all.
#[test]
fn a_reviews_phrasings_reach_their_department() {
    let cases: [(&str, &str, &[&str]); 13] = [
        ("楼上卫生间往我家渗水", "housing", &["卫生间", "渗水"]),
        ("公共卫生间没人打扫", "sanitation", &["公共卫生间"]),
        ("医疗保险报销比例太低", "social_security", &["医疗保险"]),
        ("劳动纠纷，老板还不给工资", "social_security", &["劳动纠纷", "工资"]),
        ("化工厂偷排污水", "environment", &["排污水"]),
        ("冰箱送来就是破损的，商家不给退换", "market_food_safety", &["不给退换"]),
        ("身份证过期了", "public_order", &["身份证过期"]),
        // A field's maize, not a tree: nobody's department.
        ("大风把玉米刮倒伏了", "general", &[]),
        ("电梯门夹人，物业也不修", "elevator", &["电梯", "夹人"]),
        ("都十一月了还不供热，啥时候开栓啊", "heating", &["供热", "开栓"]),
        // Relief after a fire is civil affairs' (临时救助 is longer than 火灾).
        ("家里遭了火灾，能不能申请临时救助", "civil_assistance", &["临时救助"]),
        ("县医院看病排队太久", "public_health", &["医院"]),
        ("假种子坑了我们一季", "market_food_safety", &["假种子"]),
    ];
    check_inferred(&cases);
    // A second review: a keyword reaching across words (没有电 in 没有电话,
    // 地热 in 当地热心), a radiator's leak, a building site, a lift.
    let cases: [(&str, &str, &[&str]); 7] = [
        ("上次反映的问题到现在也没有电话回复", "general", &[]),
        ("老楼没有电梯，申请加装电梯", "elevator", &["电梯"]),
        ("家里没有电了", "power", &["家里没有电", "没有电了"]),
        ("暖气漏气，屋里不热", "heating", &["暖气漏气"]),
        ("当地热心群众反映路灯坏了", "street_lighting", &["路灯"]),
        ("工地噪音太大", "city_management", &["工地噪音"]),
        // 电梯 and 物业 tie: the lift is listed before buildings and property.
        ("电梯坏了物业不管", "elevator", &["电梯"]),
    ];
    check_inferred(&cases);
}

/// The general category's keywords are phrases that hold another
/// category's keyword and are not its matter: they mask it, and choose
/// nothing themselves (a power cut beside a flat phone is still a power cut).
#[test]
fn the_general_categorys_phrases_mask_and_choose_nothing() {
    let cases: [(&str, &str, &[&str]); 5] = [
        ("我手机没电了，在车站回不了家，能不能帮帮忙", "general", &[]),
        ("打了三次电话都没人回复，也没电话通知", "general", &[]),
        ("天不亮就开始施工，吵得睡不着", "general", &[]),
        ("楼里停电了，手机没电了也打不了电话", "power", &["停电"]),
        ("家里没电了", "power", &["没电"]),
    ];
    check_inferred(&cases);
}
