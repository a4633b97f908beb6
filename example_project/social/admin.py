from django.contrib import admin

from .models import DailyCount, Follow, TimelineEntry, TrendingHashtag, Tweet


@admin.register(Tweet)
class TweetAdmin(admin.ModelAdmin):
    list_display = ["author", "text", "created_at"]
    list_select_related = ["author"]
    search_fields = ["text", "author__username"]


@admin.register(Follow)
class FollowAdmin(admin.ModelAdmin):
    list_display = ["follower", "followee", "created_at"]
    list_select_related = ["follower", "followee"]


@admin.register(TimelineEntry)
class TimelineEntryAdmin(admin.ModelAdmin):
    list_display = ["owner", "tweet", "created_at"]
    list_select_related = ["owner", "tweet"]


@admin.register(TrendingHashtag)
class TrendingHashtagAdmin(admin.ModelAdmin):
    list_display = ["window_start", "tag", "count", "computed_at"]


@admin.register(DailyCount)
class DailyCountAdmin(admin.ModelAdmin):
    list_display = ["day", "user", "tweets", "computed_at"]
    list_select_related = ["user"]
