//! The fixed tables the generator draws from. Township names are Jidong's
//! real ones; every other name is made up from these parts.

/// Lattice units are 1e-4 degree (100 micro-degrees); (0, 0) is the county seat.
pub struct TownshipSpec {
    pub code: &'static str,
    pub name: &'static str,
    pub kind: &'static str,
    /// The township block: x0, y0, x1, y1 in lattice units.
    pub block: [i64; 4],
    /// The urban core (its communities), if the town has one.
    pub core: Option<[i64; 4]>,
    /// Urban communities: code suffix, name, grid count, street keywords.
    pub communities: &'static [(&'static str, &'static str, usize, [&'static str; 2])],
    pub villages: usize,
}

pub const TOWNSHIPS: &[TownshipSpec] = &[
    TownshipSpec {
        code: "JDZ",
        name: "鸡东镇",
        kind: "town",
        block: [-1600, -1200, 1400, 1300],
        core: Some([-330, -250, 330, 250]),
        communities: &[
            ("NH", "南华社区", 9, ["南华路", "鸡东大街"]),
            ("DF", "东风社区", 8, ["东风路", "东环路"]),
            ("FR", "繁荣社区", 9, ["繁荣路", "中心大街"]),
            ("HP", "和平社区", 8, ["和平路", "胜利路"]),
            ("XH", "新华社区", 8, ["新华街", "光明街"]),
            ("JS", "建设社区", 9, ["建设路", "人民路"]),
            ("WH", "文化社区", 8, ["文化路", "育才路"]),
            ("DX", "东兴社区", 8, ["东兴街", "振兴路"]),
            ("ZQ", "站前社区", 8, ["站前路", "北环路"]),
            ("YL", "园林社区", 8, ["园林路", "西环路"]),
            ("FM", "福民社区", 8, ["福民街", "南环路"]),
        ],
        villages: 14,
    },
    TownshipSpec {
        code: "PYZ",
        name: "平阳镇",
        kind: "town",
        block: [1400, -1200, 6000, 1300],
        core: Some([2500, 0, 2740, 180]),
        communities: &[
            ("PY", "平阳社区", 6, ["平阳大街", "矿建路"]),
            ("XP", "兴平社区", 6, ["兴平路", "团结路"]),
        ],
        villages: 16,
    },
    TownshipSpec {
        code: "XYZ",
        name: "向阳镇",
        kind: "town",
        block: [-6000, -1200, -1600, 1300],
        core: Some([-3900, 100, -3730, 230]),
        communities: &[("XY", "向阳社区", 6, ["向阳大街", "友谊路"])],
        villages: 14,
    },
    TownshipSpec {
        code: "HDZ",
        name: "哈达镇",
        kind: "town",
        block: [-5200, 1300, -1600, 3900],
        core: None,
        communities: &[],
        villages: 13,
    },
    TownshipSpec {
        code: "YAZ",
        name: "永安镇",
        kind: "town",
        block: [0, -4000, 3000, -1200],
        core: Some([1400, -2700, 1570, -2570]),
        communities: &[("YA", "永安社区", 6, ["永安大街", "幸福路"])],
        villages: 14,
    },
    TownshipSpec {
        code: "YHZ",
        name: "永和镇",
        kind: "town",
        block: [-1600, 1300, 1800, 3900],
        core: None,
        communities: &[],
        villages: 13,
    },
    TownshipSpec {
        code: "DHZ",
        name: "东海镇",
        kind: "town",
        block: [1800, 1300, 5400, 3900],
        core: None,
        communities: &[],
        villages: 15,
    },
    TownshipSpec {
        code: "XNZ",
        name: "兴农镇",
        kind: "town",
        block: [3000, -4000, 5800, -1200],
        core: None,
        communities: &[],
        villages: 14,
    },
    TownshipSpec {
        code: "JLX",
        name: "鸡林朝鲜族乡",
        kind: "township",
        block: [-2800, -4000, 0, -1200],
        core: None,
        communities: &[],
        villages: 9,
    },
    TownshipSpec {
        code: "MDX",
        name: "明德朝鲜族乡",
        kind: "township",
        block: [-5600, -4000, -2800, -1200],
        core: None,
        communities: &[],
        villages: 8,
    },
];

/// Dedicated grids: township, parent community code suffix (urban) or village
/// number, parent grid number, site kind, name, keywords, shape.
pub struct SiteSpec {
    pub township: &'static str,
    pub community: &'static str,
    pub grid: usize,
    pub site: &'static str,
    pub name: &'static str,
    pub keywords: [&'static str; 2],
    /// A park is drawn as a pentagon, everything else as a rectangle.
    pub park: bool,
}

pub const SITES: &[SiteSpec] = &[
    SiteSpec {
        township: "JDZ",
        community: "WH",
        grid: 2,
        site: "school",
        name: "鸡东县第一中学",
        keywords: ["鸡东县第一中学", "鸡东一中"],
        park: false,
    },
    SiteSpec {
        township: "JDZ",
        community: "JS",
        grid: 4,
        site: "school",
        name: "鸡东县第二中学",
        keywords: ["鸡东县第二中学", "鸡东二中"],
        park: false,
    },
    SiteSpec {
        township: "JDZ",
        community: "HP",
        grid: 3,
        site: "hospital",
        name: "鸡东县人民医院",
        keywords: ["鸡东县人民医院", "县人民医院"],
        park: false,
    },
    SiteSpec {
        township: "JDZ",
        community: "DF",
        grid: 5,
        site: "hospital",
        name: "鸡东县中医医院",
        keywords: ["鸡东县中医医院", "县中医院"],
        park: false,
    },
    SiteSpec {
        township: "JDZ",
        community: "ZQ",
        grid: 1,
        site: "station",
        name: "鸡东火车站",
        keywords: ["鸡东火车站", "鸡东站"],
        park: false,
    },
    SiteSpec {
        township: "JDZ",
        community: "FR",
        grid: 6,
        site: "market",
        name: "鸡东县农贸市场",
        keywords: ["鸡东县农贸市场", "农贸大市场"],
        park: false,
    },
    SiteSpec {
        township: "JDZ",
        community: "V01",
        grid: 1,
        site: "industrial_park",
        name: "鸡东经济开发区",
        keywords: ["鸡东经济开发区", "鸡东开发区"],
        park: true,
    },
    SiteSpec {
        township: "HDZ",
        community: "V01",
        grid: 1,
        site: "industrial_park",
        name: "哈达工业园区",
        keywords: ["哈达工业园区", "哈达园区"],
        park: true,
    },
];

pub struct DepartmentSpec {
    pub code: &'static str,
    pub name: &'static str,
}

pub const DEPARTMENTS: &[DepartmentSpec] = &[
    DepartmentSpec { code: "water", name: "县水务局" },
    DepartmentSpec { code: "heating", name: "县供热管理办公室" },
    DepartmentSpec { code: "power", name: "县供电公司" },
    DepartmentSpec { code: "housing", name: "县住房和城乡建设局" },
    DepartmentSpec { code: "urban", name: "县城市管理综合执法局" },
    DepartmentSpec { code: "police", name: "县公安局" },
    DepartmentSpec { code: "civil", name: "县民政局" },
    DepartmentSpec { code: "hrss", name: "县人力资源和社会保障局" },
    DepartmentSpec { code: "market", name: "县市场监督管理局" },
    DepartmentSpec { code: "health", name: "县卫生健康局" },
];

pub struct CategorySpec {
    pub code: &'static str,
    pub name: &'static str,
    pub handling: &'static str,
    pub department: Option<&'static str>,
    pub keywords: &'static [&'static str],
    /// normal, urgent, emergency
    pub claim: [&'static str; 3],
    pub close: [&'static str; 3],
}

pub const GENERAL_CATEGORY: &str = "general";

pub const CATEGORIES: &[CategorySpec] = &[
    // Gas and fire first: a gas smell or a fire never loses a tie to
    // another category (邻居家着火了 is a fire, not a neighbour dispute).
    CategorySpec {
        code: "gas",
        name: "燃气安全",
        handling: "department",
        department: Some("housing"),
        keywords: &["燃气", "天然气", "煤气", "液化气", "漏气"],
        claim: ["30m", "15m", "5m"],
        close: ["1d", "8h", "2h"],
    },
    CategorySpec {
        code: "fire_safety",
        name: "消防安全",
        handling: "grid_with_department",
        department: Some("police"),
        keywords: &[
            "消防",
            "消防通道",
            "火灾",
            "着火",
            "起火",
            "冒烟",
            "飞线充电",
            "楼道充电",
            "电动车充电",
            "灭火器",
        ],
        claim: ["1h", "30m", "10m"],
        close: ["2d", "12h", "4h"],
    },
    CategorySpec {
        code: "water",
        name: "供水",
        handling: "department",
        department: Some("water"),
        keywords: &["漏水", "停水", "水管", "爆管", "水压", "自来水", "水表", "没水", "水质", "水发黄"],
        claim: ["1h", "30m", "10m"],
        close: ["2d", "12h", "4h"],
    },
    CategorySpec {
        code: "drainage",
        name: "排水",
        handling: "grid_with_department",
        department: Some("housing"),
        // Not 堵塞 alone: 交通堵塞 and 道路堵塞 are not drains.
        keywords: &[
            "下水道",
            "管道堵塞",
            "下水堵",
            "马桶堵",
            "厕所堵",
            "地漏堵",
            "返水",
            "污水",
            "化粪池",
            "井盖",
            "下水管堵",
        ],
        claim: ["2h", "30m", "15m"],
        close: ["3d", "24h", "6h"],
    },
    CategorySpec {
        code: "heating",
        name: "供热",
        handling: "department",
        department: Some("heating"),
        // Not 不热 alone: 热水器不热, 态度不热情. A leaking radiator is the
        // heating office's (暖气漏水, 暖气管 over the water bureau's 漏水).
        keywords: &[
            "暖气",
            "供暖",
            "采暖",
            "暖气片",
            "暖气管",
            "暖气漏水",
            "室温",
            "热力",
            "屋里冷",
            "家里冷",
            "供热",
            "开栓",
            "地热不",
            "地热管",
            "地热漏水",
            "屋里太冷",
            "家里太冷",
            "暖气漏气",
            "暖气跑气",
        ],
        claim: ["1h", "30m", "10m"],
        close: ["2d", "12h", "4h"],
    },
    CategorySpec {
        code: "power",
        name: "供电",
        handling: "department",
        department: Some("power"),
        keywords: &["停电", "断电", "电线", "电表", "跳闸", "没电", "电压", "没有电了", "家里没有电", "电费"],
        claim: ["1h", "20m", "10m"],
        close: ["1d", "8h", "2h"],
    },
    CategorySpec {
        code: "street_lighting",
        name: "路灯照明",
        handling: "department",
        department: Some("urban"),
        keywords: &["路灯", "不亮", "照明", "灯杆"],
        claim: ["4h", "1h", "30m"],
        close: ["5d", "2d", "12h"],
    },
    CategorySpec {
        code: "roads",
        name: "道路设施",
        handling: "department",
        department: Some("housing"),
        keywords: &["路面", "坑洼", "塌陷", "破损", "修路", "道路", "人行道", "桥梁"],
        claim: ["4h", "1h", "30m"],
        close: ["7d", "2d", "12h"],
    },
    CategorySpec {
        code: "sanitation",
        name: "环境卫生",
        handling: "grid_with_department",
        department: Some("urban"),
        // Longer phrases win over roads' 路面, 道路, 人行道 and 破损 inside or beside them.
        keywords: &[
            "垃圾",
            "垃圾桶",
            "堆满垃圾",
            "乱倒垃圾",
            "乱扔垃圾",
            "清运",
            "脏乱",
            "卫生",
            "异味",
            "积雪",
            "路面积雪",
            "道路积雪",
            "扫雪",
            "清雪",
            "推雪",
            "没人扫",
            "公共卫生间",
            "公厕",
        ],
        claim: ["4h", "1h", "30m"],
        close: ["3d", "24h", "8h"],
    },
    CategorySpec {
        code: "public_order",
        name: "社会治安",
        handling: "department",
        department: Some("police"),
        keywords: &[
            "打架",
            "盗窃",
            "被偷",
            "治安",
            "可疑",
            "斗殴",
            "诈骗",
            "垃圾短信",
            "赌博",
            "传销",
            "高空抛物",
            "烟花爆竹",
            "鞭炮",
            "流浪狗",
            "野狗",
            "恶犬",
            "遛狗",
            "被骗",
            "身份证过期",
        ],
        claim: ["30m", "15m", "5m"],
        close: ["1d", "12h", "2h"],
    },
    CategorySpec {
        code: "neighbour_dispute",
        name: "邻里纠纷",
        handling: "grid",
        department: None,
        keywords: &["噪音", "噪声", "邻居", "纠纷", "吵架", "扰民", "矛盾"],
        claim: ["2h", "1h", "30m"],
        close: ["5d", "2d", "1d"],
    },
    CategorySpec {
        code: "social_security",
        name: "社会保障",
        handling: "department",
        department: Some("hrss"),
        keywords: &[
            "社保",
            "养老金",
            "医保",
            "欠薪",
            "拖欠工资",
            "工资",
            "讨薪",
            "就业",
            "失业",
            "工钱",
            "劳动纠纷",
            "医疗保险",
            "养老保险",
            "新农合",
        ],
        claim: ["4h", "2h", "1h"],
        close: ["10d", "3d", "1d"],
    },
    CategorySpec {
        code: "civil_assistance",
        name: "社会救助",
        handling: "grid_with_department",
        department: Some("civil"),
        keywords: &["低保", "救助", "困难户", "孤寡", "残疾", "养老院", "五保户", "高龄补贴", "临时救助"],
        claim: ["4h", "2h", "1h"],
        close: ["10d", "3d", "1d"],
    },
    CategorySpec {
        code: "market_food_safety",
        name: "市场与食品安全",
        handling: "department",
        department: Some("market"),
        keywords: &[
            "食品",
            "过期",
            "变质",
            "假冒",
            "假货",
            "假药",
            "药店",
            "缺斤短两",
            "短斤少两",
            "缺斤少两",
            "以次充好",
            "价格",
            "虚假宣传",
            "退货",
            "退款",
            "农资",
            "假种子",
            "假化肥",
            "假农药",
            "吃出",
            "压秤",
            "不给退换",
            "保健品",
        ],
        claim: ["2h", "1h", "30m"],
        close: ["5d", "2d", "12h"],
    },
    CategorySpec {
        code: "public_health",
        name: "公共卫生",
        handling: "department",
        department: Some("health"),
        // 卫生院 (a township clinic), 卫生室 (a village's): not sanitation's 卫生.
        keywords: &["诊所", "卫生院", "卫生室", "卫生所", "疫苗", "传染", "医疗", "防疫", "医院"],
        claim: ["2h", "1h", "15m"],
        close: ["5d", "1d", "6h"],
    },
    CategorySpec {
        code: "petition",
        name: "信访",
        handling: "grid",
        department: None,
        keywords: &["信访", "上访", "集访", "诉求"],
        claim: ["2h", "1h", "30m"],
        close: ["15d", "5d", "1d"],
    },
    CategorySpec {
        code: "elevator",
        name: "电梯安全",
        handling: "department",
        department: Some("market"),
        keywords: &["电梯", "困人", "扶梯", "夹人"],
        claim: ["30m", "15m", "5m"],
        close: ["1d", "8h", "2h"],
    },
    CategorySpec {
        code: "housing",
        name: "房屋物业",
        handling: "grid_with_department",
        department: Some("housing"),
        // 楼道灯 and 声控灯 are the building's, not the street's: longer
        // than street lighting's 不亮, so 楼道灯不亮 comes here.
        keywords: &[
            "物业",
            "楼道灯",
            "声控灯",
            "单元门",
            "漏雨",
            "危房",
            "墙体开裂",
            "墙皮脱落",
            "房屋裂缝",
            "拆迁",
            "维修基金",
            "交房",
            "渗水",
            "卫生间",
            "小区改造",
        ],
        claim: ["4h", "1h", "30m"],
        close: ["5d", "2d", "12h"],
    },
    CategorySpec {
        code: "city_management",
        name: "市容秩序",
        handling: "department",
        department: Some("urban"),
        // 施工噪音 (a building site) and 油烟扰民 (a restaurant) are the
        // city's, not a neighbour's.
        keywords: &[
            "违章建筑",
            "违建",
            "私搭乱建",
            "乱搭乱建",
            "占道经营",
            "流动摊贩",
            "摆摊",
            "小广告",
            "乱贴",
            "广告牌",
            "油烟",
            "油烟扰民",
            "施工噪音",
            "施工噪声",
            "工地噪音",
            "工地噪声",
            "绿化",
            "树木",
            "树枝",
            "树倒伏",
            "施工太吵",
            "施工扰民",
            "冰溜子",
        ],
        claim: ["4h", "1h", "30m"],
        close: ["5d", "2d", "12h"],
    },
    CategorySpec {
        code: "traffic",
        name: "交通秩序",
        handling: "department",
        department: Some("police"),
        // 红绿灯 and 信号灯 are longer than street lighting's 不亮.
        keywords: &[
            "红绿灯",
            "信号灯",
            "交通堵塞",
            "堵车",
            "乱停",
            "违停",
            "停车",
            "拒载",
            "出租车",
            "超载",
            "酒驾",
        ],
        claim: ["2h", "30m", "15m"],
        close: ["3d", "1d", "4h"],
    },
    CategorySpec {
        code: "environment",
        name: "生态环境",
        handling: "grid",
        department: None,
        // No ecology bureau among the ten departments: the grid worker
        // checks and the command centre takes it further.
        keywords: &[
            "污染",
            "排污",
            "焚烧",
            "秸秆",
            "烧垃圾",
            "黑烟",
            "扬尘",
            "粉尘",
            "废水",
            "臭气",
            "排污水",
            "排放污水",
        ],
        claim: ["4h", "2h", "1h"],
        close: ["5d", "2d", "1d"],
    },
    CategorySpec {
        code: GENERAL_CATEGORY,
        name: "综合事项",
        handling: "grid",
        department: None,
        // Phrases that hold another category's keyword and are not its
        // matter: longer, they keep 没电 (a phone's battery), 没电 in 没电话
        // (nobody called) and 不亮 (before dawn) from sending the case to
        // the power company or the street lights.
        keywords: &["手机没电", "没电话", "天不亮"],
        claim: ["4h", "2h", "30m"],
        close: ["5d", "2d", "1d"],
    },
];

/// First and second characters of village names (X + Y + 村).
pub const VILLAGE_FIRST: &[&str] = &[
    "永", "兴", "太", "福", "新", "东", "西", "南", "北", "红", "胜", "前", "长", "双", "青", "万", "金",
    "德", "和", "保", "庆", "富", "先", "光", "友", "联", "增", "民", "星", "宏", "吉", "良", "顺", "鑫",
    "裕", "恒",
];
pub const VILLAGE_SECOND: &[&str] = &[
    "丰", "安", "平", "兴", "胜", "利", "发", "华", "山", "河", "林", "泉", "岭", "阳", "义", "合", "源",
    "乐", "旺", "隆", "盛", "农", "强", "升", "昌", "荣",
];

/// Estate names (urban grid keywords): prefix + suffix.
pub const ESTATE_PREFIX: &[&str] = &[
    "金桥", "阳光", "幸福", "和谐", "锦绣", "翠竹", "丽景", "富民", "康乐", "华府", "鑫源", "祥和", "欣荣",
    "明珠", "紫金", "枫林", "春晖", "瑞丰", "东方", "银河", "盛世", "怡景", "滨河", "龙腾", "凤凰", "御景",
    "书香", "桃源", "碧水", "松涛", "泰和", "嘉禾", "鸿运", "文苑", "绿洲", "福泽", "安康", "天润", "馨园",
    "宜居", "君悦", "秀水",
];
pub const ESTATE_SUFFIX: &[&str] = &["小区", "家园", "花园", "新村", "公寓", "嘉园", "名苑", "雅居"];

/// Prefixes of hamlet names (前李家屯): rural grid keywords.
pub const HAMLET_PREFIX: &[&str] = &["前", "后", "东", "西", "大", "小", "上", "下"];

pub const SURNAMES: &[&str] = &[
    "王", "李", "张", "刘", "陈", "杨", "赵", "黄", "周", "吴", "徐", "孙", "马", "朱", "胡", "郭", "何",
    "高", "林", "罗", "郑", "梁", "谢", "宋", "唐", "许", "韩", "冯", "邓", "曹", "彭", "曾", "肖", "田",
    "董", "袁", "潘", "于", "蒋", "蔡", "余", "杜", "叶", "程", "苏", "魏", "吕", "丁", "任", "沈", "姚",
    "卢", "姜", "崔", "钟", "谭", "陆", "汪", "范", "金", "石", "廖", "贾", "夏", "付", "方", "白", "邹",
    "孟", "熊", "秦", "邱", "江", "尹", "薛", "闫", "段", "雷", "侯", "龙", "史", "陶", "贺", "顾", "毛",
    "郝", "龚", "邵", "万", "钱", "严", "武", "戴", "孔", "汤", "常", "葛", "齐", "关", "单",
];

/// Common surnames of Korean Chinese (朝鲜族), used more in the two ethnic townships.
pub const KOREAN_SURNAMES: &[&str] =
    &["金", "朴", "李", "崔", "郑", "姜", "尹", "韩", "申", "权", "玄", "全"];

pub const GIVEN: &[&str] = &[
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "军", "洋", "勇", "艳", "杰", "娟", "涛", "明", "超",
    "霞", "平", "刚", "桂", "英", "华", "玉", "兰", "秀", "凤", "春", "国", "建", "志", "文", "海", "红",
    "晓", "东", "辉", "鹏", "亮", "宇", "丹", "萍", "斌", "宁", "飞", "波", "琳", "雪", "梅", "颖", "欣",
    "龙", "成", "林", "佳", "俊", "慧", "淑", "德", "永", "立", "福", "宏", "双", "喜", "昌", "玲", "莉",
    "浩", "峰",
];

/// Part-time duty windows and how often each is drawn.
pub const DUTY: &[(&str, u64)] = &[
    ("08:00-12:00", 3),
    ("18:00-22:00", 3),
    ("20:00-08:00", 2),
    ("08:00-12:00;14:00-18:00", 3),
    ("12:00-20:00", 2),
    ("06:00-10:00;16:00-20:00", 2),
    ("", 1),
];

pub const PHONE_PREFIXES: &[&str] = &[
    "130", "131", "132", "133", "134", "135", "136", "137", "138", "139", "150", "151", "152", "153", "155",
    "156", "157", "158", "159", "177", "180", "182", "183", "185", "186", "187", "188", "189", "199",
];

pub const CHINESE_NUMERALS: &[&str] = &["一", "二", "三", "四", "五", "六", "七", "八", "九", "十"];

/// 1 -> 一, 12 -> 十二, 20 -> 二十 (1..=99).
pub fn numeral(n: usize) -> String {
    assert!((1..100).contains(&n));
    let (tens, ones) = (n / 10, n % 10);
    let mut s = String::new();
    if tens > 1 {
        s.push_str(CHINESE_NUMERALS[tens - 1]);
    }
    if tens > 0 {
        s.push('十');
    }
    if ones > 0 {
        s.push_str(CHINESE_NUMERALS[ones - 1]);
    }
    s
}
